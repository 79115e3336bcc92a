//! The boot decision with a held fleet policy: which of policy and config decides, per client.

use std::sync::Arc;

use netboot_proto::{
    policy::{parse_source, Arch, SignedPolicy, SourceMeta},
    SecretKey,
};

use super::*;
use crate::policy::Held;

const X: &str = "52:54:00:00:00:0a";
const Y: &str = "52:54:00:00:00:0b";
const Z: &str = "52:54:00:00:00:0c";

fn held(version: u64, expires: Option<u64>, text: &str) -> Arc<Held> {
    let key = SecretKey::from_seed([1; 32]);
    let meta = SourceMeta {
        version,
        created: 100,
        expires,
        publisher: key.public(),
    };
    let policy = parse_source(text, meta).unwrap();
    Arc::new(Held {
        policy: SignedPolicy::sign(&policy, &key).unwrap(),
        arrived: 100,
    })
}

const POLICY: &str = r#"
[groups]
kiosks = ["52:54:00:00:00:0b"]

[defaults]
lab = { menu = true }

[[rule]]
name = "x-at-c"
machines = ["52:54:00:00:00:0a"]
sites = ["site-c"]
image = "img-a"

[[rule]]
name = "kiosks"
groups = ["kiosks"]
archs = ["efi_x64"]
image = "kiosk"
version = 3
once = true

[[rule]]
name = "bios-disk"
machines = ["52:54:00:00:00:0a"]
archs = ["bios"]
local = true
"#;

fn node(site: Option<&str>, policy: Option<Arc<Held>>) -> BootPolicy {
    let mut p = BootPolicy {
        site: site.map(Into::into),
        held: policy,
        default_image: Some("img-b".parse().unwrap()),
        ..BootPolicy::default()
    };
    p.machines.insert(
        X.parse().unwrap(),
        Machine::Image("local-x".parse().unwrap()),
    );
    p
}

/// What a choice says in one short string, for the table.
fn short(c: &BootChoice) -> String {
    match c {
        BootChoice::Image {
            name,
            version: None,
            why,
        } => format!("{name} ({why})"),
        BootChoice::Image {
            name,
            version: Some(v),
            why,
        } => format!("{name} v{v} ({why})"),
        BootChoice::Menu { why } => format!("menu ({why})"),
        BootChoice::Local { why } => format!("local ({why})"),
    }
}

#[test]
fn decision_table() {
    let p = || Some(held(7, None, POLICY));
    // (what, node, mac, arch, choice, rule label and once)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        BootPolicy,
        &str,
        Option<Arch>,
        &str,
        Option<(&str, bool)>,
    )> = vec![
        (
            "no policy: [machines]",
            node(Some("site-c"), None),
            X,
            None,
            "local-x (assigned to this MAC)",
            None,
        ),
        (
            "no policy: default image",
            node(Some("site-c"), None),
            Y,
            None,
            "img-b (default image)",
            None,
        ),
        (
            "rule 1 matches X at site-c: the policy beats [machines]",
            node(Some("site-c"), p()),
            X,
            Some(Arch::Bios),
            "img-a (policy v7 rule 1 \"x-at-c\")",
            Some(("rule 1 \"x-at-c\"", false)),
        ),
        (
            "X elsewhere on BIOS: rule 3",
            node(Some("site-b"), p()),
            X,
            Some(Arch::Bios),
            "local (policy v7 rule 3 \"bios-disk\")",
            Some(("rule 3 \"bios-disk\"", false)),
        ),
        (
            "X on a node without a site label: rule 1 names a site, rule 3 wants BIOS",
            node(None, p()),
            X,
            Some(Arch::EfiX64),
            "local-x (assigned to this MAC; policy v7 has no rule or default for it)",
            None,
        ),
        (
            "kiosk on efi_x64: pinned version, one-shot",
            node(Some("site-b"), p()),
            Y,
            Some(Arch::EfiX64),
            "kiosk v3 (policy v7 rule 2 \"kiosks\")",
            Some(("rule 2 \"kiosks\"", true)),
        ),
        (
            "kiosk whose arch is unknown: rule 2 does not match; the config's default",
            node(Some("site-b"), p()),
            Y,
            None,
            "img-b (default image; policy v7 has no rule or default for it)",
            None,
        ),
        (
            "site default",
            node(Some("lab"), p()),
            Z,
            None,
            "menu (policy v7 default for site lab)",
            None,
        ),
        (
            "expired policy: the config decides, and the reason says why",
            node(Some("site-c"), Some(held(7, Some(1000), POLICY))),
            X,
            None,
            "local-x (assigned to this MAC; policy v7 expired)",
            None,
        ),
    ];
    for (what, node, mac, arch, want, want_rule) in cases {
        let mac: MacAddr = mac.parse().unwrap();
        let d = node.decide(Some(&mac), arch, 2000);
        assert_eq!(short(&d.choice), want, "{what}");
        let rule = d.rule.as_ref().map(|r| (r.label.as_str(), r.once));
        assert_eq!(rule, want_rule, "{what}");
    }
}

#[test]
fn unknown_machine_without_config_boots_local_disk() {
    let mut node = node(Some("site-b"), Some(held(2, None, POLICY)));
    node.default_image = None;
    let d = node.decide(Some(&Z.parse().unwrap()), None, 200);
    assert!(
        matches!(&d.choice, BootChoice::Local { why } if why.contains("unknown machine")),
        "{d:?}"
    );
}

#[test]
fn fleet_default_and_conflicts_are_reported_once_per_version() {
    let text = "default = { image = \"img-b\" }\n";
    let node = node(Some("site-c"), Some(held(4, None, text)));
    let x: MacAddr = X.parse().unwrap();
    let d = node.decide(Some(&x), None, 200);
    assert_eq!(short(&d.choice), "img-b (policy v4 fleet-wide default)");
    let conflict = d.conflict.clone().unwrap();
    assert!(
        conflict.contains("[machines] assigns image local-x") && conflict.contains("policy wins"),
        "{conflict}"
    );
    assert!(node.conflicts.first(x, 4) && !node.conflicts.first(x, 4));
    assert!(
        node.conflicts.first(x, 5),
        "a new policy version logs again"
    );
    // A MAC [machines] does not list, or lists with the policy's image: no conflict.
    let y: MacAddr = Y.parse().unwrap();
    assert_eq!(node.decide(Some(&y), None, 200).conflict, None);
    let mut same = node.clone();
    same.machines
        .insert(x, Machine::Image("img-b".parse().unwrap()));
    assert_eq!(same.decide(Some(&x), None, 200).conflict, None);
}

#[test]
fn live_policy_follows_the_held_policy_without_a_reload() {
    let (_config, live) = LivePolicy::new(node(Some("site-c"), None));
    let (tx, rx) = tokio::sync::watch::channel(None);
    let live = live.with_held(rx, None);
    let x: MacAddr = X.parse().unwrap();
    let image_of = |live: &LivePolicy| short(&live.current().decide(Some(&x), None, 200).choice);
    assert_eq!(image_of(&live), "local-x (assigned to this MAC)");
    tx.send_replace(Some(held(1, None, "default = { image = \"img-b\" }\n")));
    assert_eq!(image_of(&live), "img-b (policy v1 fleet-wide default)");
}

#[test]
fn a_one_shot_rule_boots_its_image_until_the_ledger_has_it_done_then_local_disk() {
    use std::{net::IpAddr, time::SystemTime};

    use crate::clients::{ClientLog, Fetch, ImageRef, Stage, Via};

    let log = ClientLog::default();
    let mut p = node(None, Some(held(10, None, POLICY)));
    p.once = Some(log.clone());
    let y: MacAddr = Y.parse().unwrap();
    let image = |d: &Decision| matches!(&d.choice, BootChoice::Image { name, .. } if name.as_str() == "kiosk");
    // Given, pending: the retry before the kernel gets the image again.
    for _ in 0..2 {
        let d = super::super::resolve::decide(&p, Some(&y), Some(Arch::EfiX64));
        assert!(image(&d), "{d:?}");
    }
    let ip: IpAddr = "10.0.0.7".parse().unwrap();
    log.identified(y, ip, SystemTime::now());
    for (stage, file) in [(Stage::Kernel, "vmlinuz"), (Stage::Initrd, "initrd.img")] {
        let fetch = Fetch {
            stage,
            image: Some(ImageRef::new(&"kiosk".parse().unwrap(), 3)),
            file: file.into(),
            via: Via::Http,
        };
        log.fetched(ip, fetch, SystemTime::now());
    }
    let d = super::super::resolve::decide(&p, Some(&y), Some(Arch::EfiX64));
    match &d.choice {
        BootChoice::Local { why } => assert!(
            why.starts_with("one-shot rule 2 \"kiosks\" of policy v10 done at"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    // A new policy version re-arms it.
    p.held = Some(held(11, None, POLICY));
    assert!(image(&super::super::resolve::decide(
        &p,
        Some(&y),
        Some(Arch::EfiX64)
    )));
    // Without the ledger (a node built without one) the rule boots its image every time.
    p.once = None;
    p.held = Some(held(10, None, POLICY));
    assert!(image(&super::super::resolve::decide(
        &p,
        Some(&y),
        Some(Arch::EfiX64)
    )));
}
