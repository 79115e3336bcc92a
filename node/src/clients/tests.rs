//! A boot as the servers report it, step by step, in server and proxy mode, and the bounds.

use std::net::Ipv4Addr;

use netboot_proto::{BootEntry, CmdlineTemplate, FileEntry, Release, ReleaseSpec, SecretKey};

use super::*;
use crate::dhcp::ClientArch;

const MAC: &str = "52:54:00:12:34:56";
const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn dhcp(ipxe: bool, ip: Option<Ipv4Addr>) -> DhcpSeen {
    DhcpSeen {
        mac: mac(MAC),
        mode: "server",
        arch: Some(ClientArch::BiosX86),
        vendor: "PXEClient".into(),
        boot_client: true,
        ipxe,
        ip,
        answer: DhcpAnswer::Boot,
    }
}

fn fetch(stage: Stage, file: &str, via: Via) -> Fetch {
    Fetch {
        stage,
        image: matches!(stage, Stage::Config | Stage::Kernel | Stage::Initrd)
            .then(|| ImageRef::new(&"debian".parse().unwrap(), 7)),
        file: file.into(),
        via,
    }
}

fn stages(b: &Boot) -> Vec<(Stage, u64)> {
    b.stages.iter().map(|(s, t)| (*s, *t)).collect()
}

#[test]
fn a_server_mode_boot_from_firmware_to_initrd() {
    let mut c = Clients::new(Limits::default());
    c.dhcp(dhcp(false, Some(IP)), 1_000);
    c.fetched(
        IP,
        fetch(Stage::FirstStage, "undionly.kpxe", Via::Tftp),
        2_000,
    );
    // iPXE's own DHCP continues the boot.
    c.dhcp(dhcp(true, Some(IP)), 3_000);
    c.fetched(IP, fetch(Stage::Config, "/boot.ipxe", Via::Http), 4_000);
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 5_000);
    c.fetched(IP, fetch(Stage::Initrd, "initrd.img", Via::Http), 6_000);
    assert!(
        !c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 7_000),
        "a re-fetch reaches no new stage"
    );

    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 1, "{boots:#?}");
    let b = &boots[0];
    assert_eq!(b.mac, Some(mac(MAC)));
    assert_eq!(b.arch.as_deref(), Some("BIOS x86"));
    assert_eq!(
        stages(b),
        [
            (Stage::DhcpAnswered, 1_000),
            (Stage::FirstStage, 2_000),
            (Stage::Config, 4_000),
            (Stage::Kernel, 5_000),
            (Stage::Initrd, 6_000),
        ],
        "each stage keeps the time it was first reached"
    );
    assert_eq!(b.furthest(), Some(Stage::Initrd));
    assert_eq!(
        b.image.as_ref().map(|i| (i.name.as_str(), i.version)),
        Some(("debian", 7))
    );
    assert_eq!(b.last_file, Some(("vmlinuz".into(), Via::Http)));
    let m = c.machine(&mac(MAC)).unwrap();
    assert_eq!((m.first_seen_ms, m.last_seen_ms), (1_000, 7_000));
    assert_eq!(m.vendor.as_deref(), Some("PXEClient"));
    assert_eq!(m.ip, Some(IP));
}

#[test]
fn proxy_mode_first_stage_joins_the_machine_once_ipxe_names_it() {
    let mut c = Clients::new(Limits::default());
    // Proxy mode: the firmware's DISCOVER carries no address.
    c.dhcp(dhcp(false, None), 1_000);
    c.fetched(
        IP,
        fetch(Stage::FirstStage, "undionly.kpxe", Via::Tftp),
        2_000,
    );
    assert_eq!(c.recent_boots(10).len(), 2, "the address is not named yet");
    c.identified(mac(MAC), IP, 3_000);
    c.fetched(IP, fetch(Stage::Config, "/boot.ipxe", Via::Http), 3_000);
    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 1, "{boots:#?}");
    assert_eq!(
        stages(&boots[0]),
        [
            (Stage::DhcpAnswered, 1_000),
            (Stage::FirstStage, 2_000),
            (Stage::Config, 3_000)
        ]
    );
    assert_eq!(boots[0].mac, Some(mac(MAC)));
}

#[test]
fn an_address_named_long_after_the_last_boot_joins_a_new_boot() {
    let mut c = Clients::new(Limits::default());
    c.dhcp(dhcp(false, None), 1_000);
    let later = 1_000 + Limits::default().new_boot_after_ms + 5_000;
    c.fetched(
        IP,
        fetch(Stage::FirstStage, "undionly.kpxe", Via::Tftp),
        later,
    );
    c.identified(mac(MAC), IP, later + 1_000);
    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 2, "{boots:#?}");
    assert_eq!(stages(&boots[0]), [(Stage::FirstStage, later)]);
    assert_eq!(boots[0].mac, Some(mac(MAC)));
    assert_eq!(stages(&boots[1]), [(Stage::DhcpAnswered, 1_000)]);
}

#[test]
fn a_reboot_starts_a_new_boot_and_a_stale_one_too() {
    let mut c = Clients::new(Limits::default());
    c.dhcp(dhcp(false, Some(IP)), 1_000);
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 2_000);
    // The firmware asks again: the machine rebooted.
    c.dhcp(dhcp(false, Some(IP)), 60_000);
    assert_eq!(c.recent_boots(10).len(), 2);
    assert_eq!(
        c.current_boot(mac(MAC)).unwrap().furthest(),
        Some(Stage::DhcpAnswered)
    );
    // Firmware retrying DHCP within a boot (no answer yet) stays in it.
    c.dhcp(dhcp(false, Some(IP)), 61_000);
    assert_eq!(c.recent_boots(10).len(), 2);
    // Long after its last event, even iPXE's request starts a new boot.
    c.dhcp(
        dhcp(true, Some(IP)),
        61_000 + Limits::default().new_boot_after_ms + 1,
    );
    assert_eq!(c.recent_boots(10).len(), 3);
}

#[test]
fn ignored_requests_say_why_and_other_dhcp_clients_are_not_boots() {
    let mut c = Clients::new(Limits::default());
    let mut os = dhcp(false, None);
    os.boot_client = false;
    os.vendor = "\"udhcp 1.35\"".into();
    os.answer = DhcpAnswer::Ignored {
        reason: "vendor class is \"udhcp 1.35\" (proxy mode)".into(),
        quiet: false,
    };
    assert_eq!(os.outcome_label(), "ignored_not_boot_client");
    c.dhcp(os, 1_000);
    assert!(
        c.recent_boots(10).is_empty(),
        "the booted OS's DHCP is not a boot"
    );
    assert_eq!(
        c.machine(&mac(MAC)).unwrap().vendor.as_deref(),
        Some("\"udhcp 1.35\"")
    );
    let mut refused = dhcp(false, None);
    refused.answer = DhcpAnswer::Ignored {
        reason: "no free address in the pool".into(),
        quiet: false,
    };
    assert_eq!(
        (refused.outcome_label(), refused.client_label()),
        ("ignored", "firmware")
    );
    c.dhcp(refused, 2_000);
    let b = &c.recent_boots(1)[0];
    assert_eq!(b.furthest(), Some(Stage::DhcpIgnored));
    assert_eq!(b.ignored.as_deref(), Some("no free address in the pool"));
}

#[test]
fn machines_and_boots_stay_bounded() {
    // With room for 3, the oldest machine goes when a 4th arrives (an eighth of 3, at least one).
    let mut c = Clients::new(Limits {
        machines: 3,
        boots: 2,
        new_boot_after_ms: 1_000,
    });
    for i in 0..5u8 {
        let mut seen = dhcp(false, Some(Ipv4Addr::new(10, 0, 0, i)));
        seen.mac = MacAddr([0x52, 0x54, 0, 0, 0, i]);
        c.dhcp(seen, u64::from(i) * 10);
    }
    let macs: Vec<String> = c.machines().iter().map(|m| m.mac.to_string()).collect();
    assert_eq!(
        macs,
        [
            "52:54:00:00:00:04",
            "52:54:00:00:00:03",
            "52:54:00:00:00:02"
        ],
        "the least recently seen are evicted, newest first"
    );
    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 2);
    assert_eq!(boots[0].mac, Some(MacAddr([0x52, 0x54, 0, 0, 0, 4])));
    // An evicted machine's address no longer names it: its fetches are an unnamed boot.
    c.fetched(
        Ipv4Addr::new(10, 0, 0, 0),
        fetch(Stage::FirstStage, "x", Via::Tftp),
        100,
    );
    assert_eq!(c.recent_boots(1)[0].mac, None);
}

#[test]
fn kernel_initrd_and_iso_are_stages_other_files_are_not() {
    let f = |p: &str| FileEntry {
        path: p.parse().unwrap(),
        size: 1,
        hash: blake3::hash(p.as_bytes()),
    };
    let release = |boot| {
        Release::new(ReleaseSpec {
            name: "debian".parse().unwrap(),
            version: 1,
            created: 1,
            expires: None,
            publisher: SecretKey::from_seed([1; 32]).public(),
            files: vec![
                f("vmlinuz"),
                f("boot/initrd.img"),
                f("fs.squashfs"),
                f("d.iso"),
            ],
            boot,
        })
        .unwrap()
    };
    let linux = release(Some(BootEntry::Linux {
        kernel: "vmlinuz".parse().unwrap(),
        initrds: vec!["boot/initrd.img".parse().unwrap()],
        cmdline: CmdlineTemplate::parse("").unwrap(),
    }));
    assert_eq!(stage_of_file(&linux, "vmlinuz"), Some(Stage::Kernel));
    assert_eq!(
        stage_of_file(&linux, "boot/initrd.img"),
        Some(Stage::Initrd)
    );
    assert_eq!(stage_of_file(&linux, "fs.squashfs"), None);
    let iso = release(Some(BootEntry::Iso {
        iso: "d.iso".parse().unwrap(),
    }));
    assert_eq!(stage_of_file(&iso, "d.iso"), Some(Stage::Kernel));
    assert_eq!(stage_of_file(&release(None), "vmlinuz"), None);
}

#[test]
fn a_proxy_boot_is_not_stopped_by_the_requests_that_belong_to_the_site_server() {
    // The sequence a BIOS client made in the demo: firmware DISCOVER (proxy offer), its
    // REQUEST on port 67 (the site server's), iPXE's DISCOVER and REQUEST, then the files.
    let site_request = || {
        let mut r = dhcp(false, None);
        r.mode = "proxy";
        r.answer = DhcpAnswer::Ignored {
            reason: "REQUEST on port 67 belongs to the site DHCP server, ignored (proxy mode)"
                .into(),
            quiet: false,
        };
        r
    };
    let mut c = Clients::new(Limits::default());
    c.dhcp(site_request(), 500);
    assert_eq!(c.recent_boots(1)[0].furthest(), Some(Stage::DhcpIgnored));
    c.dhcp(dhcp(false, None), 1_000);
    assert_eq!(
        c.recent_boots(1)[0].ignored,
        None,
        "answered after all: the earlier refusal is not why it stopped"
    );
    c.dhcp(site_request(), 1_100);
    c.identified(mac(MAC), IP, 2_000);
    c.dhcp(
        DhcpSeen {
            ipxe: true,
            ..site_request()
        },
        2_100,
    );
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 3_000);
    c.fetched(IP, fetch(Stage::Initrd, "initrd.img", Via::Http), 4_000);
    let b = &c.recent_boots(1)[0];
    assert_eq!(b.furthest(), Some(Stage::Initrd));
    assert_eq!(b.ignored, None);
    assert_eq!(c.recent_boots(10).len(), 1, "one boot, not one per request");
}
