//! What `/metrics` says: the counters as the servers bump them, the values read at scrape
//! time, and a boot counted once per stage however often it re-fetches.

use std::{net::IpAddr, sync::Arc, time::SystemTime};

use super::scrape::{FleetNumbers, FsSpace, PeerNumbers};
use super::*;
use crate::clients::{ClientLog, DhcpAnswer, DhcpSeen, Fetch, ImageRef, Limits, Stage, Via};
use crate::dhcp::ClientArch;
use crate::fleet::{FetchView, FleetView, PeerBytes, PeerView, Refusal};

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn counters_render_as_prometheus_text() {
    let m = Metrics::new();
    m.dhcp("proxy", "bios_x86", "firmware", "answered");
    m.dhcp("proxy", "bios_x86", "firmware", "answered");
    m.transfer("tftp", TransferResult::Complete, 1000);
    m.transfer("http", TransferResult::IntegrityRefused, 10);
    m.stage("kernel", Some("debian"));
    let text = m.render(&Scraped::default());
    let l = lines(&text);
    for want in [
        "# TYPE netboot_dhcp_requests_total counter",
        r#"netboot_dhcp_requests_total{mode="proxy",arch="bios_x86",client="firmware",outcome="answered"} 2"#,
        r#"netboot_transfers_total{protocol="tftp",result="complete"} 1"#,
        r#"netboot_transfer_sent_bytes_total{protocol="tftp"} 1000"#,
        r#"netboot_integrity_refusals_total{protocol="http"} 1"#,
        r#"netboot_boot_stage_reached_total{stage="kernel",image="debian"} 1"#,
        r#"netboot_releases{state="held"} 0"#,
        "netboot_clients_known 0",
    ] {
        assert!(l.contains(&want), "missing `{want}` in:\n{text}");
    }
    assert!(
        !text.contains("netboot_fleet_"),
        "no fleet metrics without [fleet]"
    );
}

#[test]
fn fleet_numbers_come_from_the_status_view() {
    let peer = |id: &str, connected, avoided, rtt_ms, received_bytes| PeerView {
        id: id.into(),
        label: id.into(),
        configured: None,
        connected,
        rtt_ms,
        received_bytes,
        avoided,
        last_contact: None,
        holdings: vec![],
    };
    let view = FleetView {
        id: "me".into(),
        peers: vec![
            peer("aaa", true, false, Some(25.0), 4096),
            peer("bbb", false, true, None, 0),
        ],
        fetching: vec![FetchView {
            name: "debian".into(),
            version: 3,
            held_bytes: 1,
            total_bytes: 2,
            source: None,
        }],
        releases: vec![],
        refused: vec![
            Refusal {
                name: "debian".into(),
                version: 1,
                from: "bbb".into(),
                reason: "older".into(),
                at: 1,
            };
            2
        ],
        uploaded_bytes: 77,
        uploaded_to: vec![PeerBytes {
            id: "bbb".into(),
            bytes: 77,
        }],
    };
    let numbers = FleetNumbers::new(&view, vec![("debian".into(), 1.5)]);
    assert_eq!(
        numbers,
        FleetNumbers {
            peers: vec![
                PeerNumbers {
                    id: "aaa".into(),
                    connected: true,
                    avoided: false,
                    rtt_secs: Some(0.025),
                    received_bytes: 4096
                },
                PeerNumbers {
                    id: "bbb".into(),
                    connected: false,
                    avoided: true,
                    rtt_secs: None,
                    received_bytes: 0
                },
            ],
            fetching: 1,
            refused: 2,
            sent_bytes: vec![("bbb".into(), 77)],
            sync_lag: vec![("debian".into(), 1.5)],
        }
    );
    let scraped = Scraped {
        releases_held: 4,
        fleet: Some(numbers),
        fs: Some(FsSpace {
            size_bytes: 100,
            free_bytes: 40,
        }),
        ..Scraped::default()
    };
    let text = Metrics::new().render(&scraped);
    let l = lines(&text);
    for want in [
        r#"netboot_releases{state="held"} 4"#,
        r#"netboot_releases{state="fetching"} 1"#,
        r#"netboot_releases{state="refused"} 2"#,
        r#"netboot_fleet_received_bytes_total{peer="aaa"} 4096"#,
        r#"netboot_fleet_peer_connected{peer="bbb"} 0"#,
        r#"netboot_fleet_peer_avoided{peer="bbb"} 1"#,
        r#"netboot_fleet_peer_rtt_seconds{peer="aaa"} 0.025"#,
        r#"netboot_fleet_sent_bytes_total{peer="bbb"} 77"#,
        r#"netboot_fleet_sync_lag_seconds{name="debian"} 1.5"#,
        "netboot_data_filesystem_free_bytes 40",
    ] {
        assert!(l.contains(&want), "missing `{want}` in:\n{text}");
    }
    assert!(
        !text.contains(r#"netboot_fleet_peer_rtt_seconds{peer="bbb"}"#),
        "no RTT measured, none reported"
    );
}

#[test]
fn filesystem_space_of_a_real_directory() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsSpace::of(dir.path()).unwrap();
    assert!(
        fs.size_bytes > 0 && fs.free_bytes <= fs.size_bytes,
        "{fs:?}"
    );
    assert!(FsSpace::of(&dir.path().join("missing")).is_err());
}

#[test]
fn the_client_log_counts_dhcp_requests_and_each_stage_once_per_boot() {
    let metrics = Arc::new(Metrics::new());
    let log = ClientLog::new(Limits::default(), metrics.clone());
    let now = SystemTime::now();
    let ip: IpAddr = "10.0.0.9".parse().unwrap();
    log.dhcp(
        DhcpSeen {
            mac: "52:54:00:00:00:01".parse().unwrap(),
            mode: "server",
            arch: Some(ClientArch::EfiX64),
            vendor: "PXEClient".into(),
            boot_client: true,
            ipxe: false,
            ip: Some("10.0.0.9".parse().unwrap()),
            answer: DhcpAnswer::Boot,
        },
        now,
    );
    let kernel = || Fetch {
        stage: Stage::Kernel,
        image: Some(ImageRef {
            name: "debian".into(),
            version: 2,
        }),
        file: "/r/debian/2/vmlinuz".into(),
        via: Via::Http,
    };
    log.fetched(ip, kernel(), now);
    log.fetched(ip, kernel(), now);
    let text = metrics.render(&Scraped::default());
    let l = lines(&text);
    for want in [
        r#"netboot_dhcp_requests_total{mode="server",arch="efi_x64",client="firmware",outcome="answered"} 1"#,
        r#"netboot_boot_stage_reached_total{stage="kernel",image="debian"} 1"#,
    ] {
        assert!(l.contains(&want), "missing `{want}` in:\n{text}");
    }
    assert_eq!(log.machine_count(), 1);
}
