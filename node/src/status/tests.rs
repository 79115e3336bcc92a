//! The snapshot from its parts, and how the page and the terminal show it.

use super::*;
use crate::boot::fixtures::{linux, release};
use crate::fleet::{FetchView, ReleaseRef};
use crate::fleet::{FleetView, PeerView};

const NOW: u64 = 1_800_000_000;

fn identity() -> NodeIdentity {
    NodeIdentity {
        hostname: "branch-1".into(),
        version: "0.1.0".into(),
        fleet_id: Some("f".repeat(64)),
        dhcp_mode: "proxy".into(),
        dhcp_interface: Some("eth0".into()),
        base_url: "http://10.1.0.1".into(),
        http_listen: "0.0.0.0:80".into(),
        tftp_listen: Some("0.0.0.0:69".into()),
        fleet_listen: Some("0.0.0.0:7311".into()),
        site: Some("branch-1".into()),
    }
}

fn fleet(fetching: Vec<FetchView>, refused: Vec<crate::fleet::Refusal>) -> FleetView {
    FleetView {
        id: "f".repeat(64),
        peers: vec![PeerView {
            id: "a".repeat(64),
            label: "regional.example <b>x</b> (aaaaa)".into(),
            configured: None,
            connected: true,
            rtt_ms: Some(12.5),
            received_bytes: 3 * 1024 * 1024,
            avoided: false,
            last_contact: Some(NOW - 4),
            holdings: vec![],
        }],
        fetching,
        releases: vec![ReleaseRef {
            name: "debian".into(),
            version: 7,
            id: "x".into(),
        }],
        refused,
        uploaded_bytes: 0,
        uploaded_to: Vec::new(),
    }
}

/// A committed release, one being fetched from a peer, one refused; the HTML command line of
/// the committed one.
fn sample() -> NodeStatus {
    let debian = release(
        "debian",
        7,
        &["vmlinuz", "initrd.img"],
        Some(linux(
            &["initrd.img"],
            "console=ttyS0 <script>alert(1)</script>",
        )),
    );
    let live = release("live", 3, &["root.squashfs"], None);
    let fetching = vec![FetchView {
        name: "live".into(),
        version: 3,
        held_bytes: 1,
        total_bytes: 3,
        source: Some(FetchSource {
            peer: "a".repeat(64),
            label: "regional".into(),
            bytes_per_sec: 2 * 1024 * 1024,
        }),
    }];
    let refused = vec![crate::fleet::Refusal {
        name: "evil".into(),
        version: 9,
        from: "peer <i>".into(),
        reason: "signed by an untrusted key <img src=x>".into(),
        at: NOW - 30,
    }];
    assemble(
        identity(),
        &[&debian],
        &[&live],
        Some(fleet(fetching, refused)),
        &boots(),
        NOW,
    )
}

/// A client that got its kernel, and one not answered (its vendor class is the client's).
fn boots() -> Vec<crate::clients::Boot> {
    use crate::clients::{Boot, ImageRef, Stage, Via};
    let at = (NOW - 90) * 1000;
    vec![
        Boot {
            id: 2,
            mac: Some("52:54:00:12:34:56".parse().unwrap()),
            ip: Some("10.1.0.100".parse().unwrap()),
            arch: Some("EFI x86-64".into()),
            started_ms: at,
            stages: [(Stage::DhcpAnswered, at), (Stage::Kernel, at + 5000)].into(),
            image: Some(ImageRef {
                name: "debian".into(),
                version: 7,
            }),
            ignored: None,
            last_file: Some(("/r/debian/7/vmlinuz".into(), Via::Http)),
        },
        Boot {
            id: 1,
            mac: Some("52:54:00:00:00:01".parse().unwrap()),
            ip: None,
            arch: None,
            started_ms: at - 60_000,
            stages: [(Stage::DhcpIgnored, at - 60_000)].into(),
            image: None,
            // Control characters would drive the operator's terminal.
            ignored: Some("not a PXE client (vendor class `<marquee>\x1b[2J`)".into()),
            last_file: None,
        },
    ]
}

#[test]
fn snapshot_holds_each_release_with_its_state() {
    let s = sample();
    let states: Vec<(&str, u64, &str)> = s
        .releases
        .iter()
        .map(|r| (r.name.as_str(), r.version, r.state.label()))
        .collect();
    assert_eq!(
        states,
        [
            ("debian", 7, "complete"),
            ("evil", 9, "refused"),
            ("live", 3, "fetching")
        ]
    );
    let live = &s.releases[2];
    assert_eq!(live.size_bytes, Some(1));
    match &live.state {
        ReleaseState::Fetching {
            percent, source, ..
        } => {
            assert_eq!(*percent, 33);
            assert_eq!(source.as_ref().unwrap().label, "regional");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.releases[0].boot,
        Some(BootStatus::Linux {
            kernel: "vmlinuz".into(),
            initrds: vec!["initrd.img".into()],
            cmdline: "console=ttyS0 <script>alert(1)</script>".into()
        })
    );
    assert_eq!(s.peers.len(), 1);
    assert_eq!(
        s.boots[0],
        ClientBoot {
            started: NOW - 90,
            mac: Some("52:54:00:12:34:56".into()),
            ip: Some("10.1.0.100".into()),
            arch: Some("EFI x86-64".into()),
            image: Some("debian v7".into()),
            reached: Some("kernel".into()),
            ignored: None,
            last_file: Some("/r/debian/7/vmlinuz (HTTP)".into()),
        }
    );
    assert_eq!(s.boots[1].reached.as_deref(), Some("dhcp_ignored"));
    // What `netboot status --json` reads back is what the node wrote.
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<NodeStatus>(&json).unwrap(), s);
    assert!(json.contains(r#""kind":"fetching""#), "{json}");
}

#[test]
fn a_release_committed_between_the_two_looks_is_complete_once() {
    let live = release("live", 3, &["root.squashfs"], None);
    let fetching = vec![FetchView {
        name: "live".into(),
        version: 3,
        held_bytes: 1,
        total_bytes: 1,
        source: None,
    }];
    let s = assemble(
        identity(),
        &[&live],
        &[&live],
        Some(fleet(fetching, vec![])),
        &[],
        NOW,
    );
    assert_eq!(s.releases.len(), 1);
    assert_eq!(s.releases[0].state.label(), "complete");
}

#[test]
fn expired_and_expiring_releases_say_so() {
    let mut old = release("old", 1, &["f"], None);
    old.expires = Some(NOW - 1);
    let mut soon = release("soon", 1, &["f"], None);
    soon.expires = Some(NOW + 3 * 3600);
    let s = assemble(identity(), &[&old, &soon], &[], None, &[], NOW);
    assert_eq!(
        state_line(&s.releases[0].state, NOW),
        "expired: kept, no longer served"
    );
    assert_eq!(
        state_line(&s.releases[1].state, NOW),
        "complete, expires in 3 h"
    );
    assert!(s.peers.is_empty());
}

#[test]
fn page_escapes_everything_it_prints() {
    let html = render::page(&sample());
    for raw in [
        "<script>",
        "<b>x</b>",
        "<img src=x>",
        "peer <i>",
        "<marquee>",
    ] {
        assert!(!html.contains(raw), "raw `{raw}` in the page:\n{html}");
    }
    for escaped in [
        "console=ttyS0 &lt;script&gt;alert(1)&lt;/script&gt;",
        "regional.example &lt;b&gt;x&lt;/b&gt;",
        "untrusted key &lt;img src=x&gt;",
        "vendor class `&lt;marquee&gt;",
    ] {
        assert!(
            html.contains(escaped),
            "no `{escaped}` in the page:\n{html}"
        );
    }
    // No script at all; it reloads itself and fits a phone.
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains(r#"<meta http-equiv="refresh" content="5">"#));
    assert!(html.contains(r#"name="viewport""#));
    assert!(html.contains(r#"<progress value="1" max="3">"#), "{html}");
    assert!(html.contains("fetching 33 % (1 B of 3 B) from regional at 2.0 MiB/s"));
}

#[test]
fn terminal_table_lines_up() {
    let text = text::render(&sample());
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("release")).unwrap();
    assert_eq!(
        &lines[header..header + 4],
        [
            "release    size  state",
            "debian v7  2 B   complete",
            "evil v9          refused (30 s ago, from peer <i>): signed by an untrusted key <img src=x>",
            "live v3    1 B   fetching 33 % (1 B of 3 B) from regional at 2.0 MiB/s",
        ]
    );
    assert!(text.contains("12.5 ms"), "{text}");
    let boots = lines.iter().position(|l| l.starts_with("when")).unwrap();
    assert_eq!(
        &lines[boots + 1..boots + 3],
        [
            "90 s ago   52:54:00:12:34:56  EFI x86-64  debian v7  kernel",
            "2 min ago  52:54:00:00:00:01  ?           -          not answered: not a PXE client (vendor class `<marquee>\\u{1b}[2J`)",
        ]
    );
    assert!(text.contains("4 s ago"), "{text}");
}

#[test]
fn sizes_and_ages_for_people() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(8_000_000), "7.6 MiB");
    assert_eq!(ago(NOW - 59, NOW), "59 s ago");
    assert_eq!(ago(NOW - 600, NOW), "10 min ago");
    assert_eq!(ago(NOW + 5, NOW), "0 s ago");
    assert_eq!(percent(0, 0), 100);
    assert_eq!(percent(999, 1000), 99);
    assert_eq!(percent(u64::MAX, u64::MAX), 100);
}

#[test]
fn held_policy_is_shown_in_text_and_page() {
    let mut s = assemble(identity(), &[], &[], None, &[], NOW);
    let text = text::render(&s);
    assert!(
        text.contains("none held ([machines] and default_image decide)"),
        "{text}"
    );
    s.policy = Some(PolicyStatus {
        version: 7,
        id: "0123456789abcdef".into(),
        publisher: "ed25519:ab".into(),
        arrived: NOW - 5,
        expires: None,
        rules: 3,
    });
    let want = "v7 (id 0123456789abcdef) by ed25519:ab, 3 rules, arrived 5 s ago";
    let text = text::render(&s);
    assert!(text.contains(want) && text.contains("branch-1"), "{text}");
    assert!(render::page(&s).contains(want));
    let json = serde_json::to_string(&s).unwrap();
    let back: NodeStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back.policy, s.policy);
}
