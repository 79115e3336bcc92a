//! Boot policies through a fleet of real `netboot node` processes on loopback: a policy
//! published at A reaches C (which knows only B) and changes the iPXE script C generates for
//! a MAC, without a restart; forged, untrusted, expired and older policies are refused and
//! logged at the node they reach, never passed on; a node that was down while a newer policy
//! was published catches up when it comes back.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use netboot_tests::{
    content,
    fleet_sites::{Fleet, Site},
    keygen, logs_of, netboot, run, stderr, wait_until, NodeProcess,
};

const X: &str = "52:54:00:00:00:0a";
const Y: &str = "52:54:00:00:00:0b";

fn fleet_peer() -> PathBuf {
    netboot_tests::fleet_peer_bin()
}

/// The version of the boot policy a node holds (`/status.json`).
fn held_version(site: &Site) -> Option<u64> {
    let body = Command::new("curl")
        .args(["-sf", &site.url("/status.json")])
        .output()
        .expect("curl is needed: apt-get install curl");
    let json: serde_json::Value = serde_json::from_slice(&body.stdout).ok()?;
    json["policy"]["version"].as_u64()
}

/// The iPXE script a UEFI x86-64 client with `mac` gets from `site`.
fn script(site: &Site, mac: &str) -> String {
    let path = format!("/boot.ipxe?mac={mac}&ip=10.0.0.9&arch=x86_64&platform=efi");
    String::from_utf8_lossy(&site.get(&path)).into_owned()
}

/// Which image a script boots (`img-a`, `img-b`), or what else it does.
fn boots(script: &str) -> &str {
    if script.contains("booting img-a v1") {
        "img-a"
    } else if script.contains("booting img-b v1") {
        "img-b"
    } else if script.contains("booting from local disk") {
        "local"
    } else {
        "?"
    }
}

/// Signs `text` as policy version `version` with `key`; `extra` adds `netboot policy sign`
/// options.
fn sign(dir: &Path, key: &Path, text: &str, version: u64, extra: &[&str]) -> String {
    let source = dir.join(format!("policy-{version}.toml"));
    std::fs::write(&source, text).unwrap();
    let out = dir.join(format!("policy-{version}-{}.nbpol", extra.len()));
    run(
        netboot()
            .args(["policy", "sign", "--key"])
            .arg(key)
            .arg(&source)
            .arg("--out")
            .arg(&out)
            .args(["--version", &version.to_string()])
            .args(extra),
        true,
    );
    out.display().to_string()
}

/// `netboot policy publish --to SITE FILE`; returns (success, stdout + stderr).
fn publish(site: &Site, file: &str) -> (bool, String) {
    let out = netboot()
        .args(["policy", "publish", "--to", &site.addr(), file])
        .output()
        .expect("spawn netboot");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    (out.status.success(), text)
}

fn policy(x_image: &str) -> String {
    format!(
        "default = {{ image = \"img-b\" }}\n\n[[rule]]\nname = \"x-at-c\"\nmachines = [\"{X}\"]\nsites = [\"site-c\"]\nimage = \"{x_image}\"\n"
    )
}

#[test]
fn a_policy_published_at_a_rules_boots_at_c_and_bad_ones_stop_where_they_arrive() {
    let fleet = Fleet::new();
    let (a, b, c) = (fleet.site("a"), fleet.site("b"), fleet.site("c"));
    let site = |label: &str| format!("\n[node]\nsite = \"{label}\"\n");
    fleet.configure(&a, &[b.addr()], &[], &site("site-a"));
    fleet.configure(&b, &[a.addr()], &[&c.id], &site("site-b"));
    // C's own config gives X img-b: the policy's rule overrides it, and C says so once.
    let c_extra = format!("{}[machines]\n\"{X}\" = \"img-b\"\n", site("site-c"));
    fleet.configure(&c, &[b.addr()], &[], &c_extra);
    let (na, nb) = (
        NodeProcess::start(&a.config, None),
        NodeProcess::start(&b.config, None),
    );
    let mut nc = NodeProcess::start(&c.config, None);
    let logs = |nc: &NodeProcess| logs_of(&[("a", &na), ("b", &nb), ("c", nc)]);
    for (name, seed) in [("img-a", 1), ("img-b", 2)] {
        let kernel = fleet.file(&format!("{name}.vmlinuz"), &content(seed, 50_000));
        fleet.publish_to(&a, name, 1, &["--kernel", &format!("vmlinuz={kernel}")]);
    }
    wait_until(
        "C to hold both images",
        Duration::from_secs(60),
        &|| logs(&nc),
        || c.has_release("img-a", 1) && c.has_release("img-b", 1),
    );
    // No policy yet: C's [machines] decides for X; Y (no entry, no default image) gets the
    // menu.
    assert_eq!(boots(&script(&c, X)), "img-b", "{}", script(&c, X));
    assert!(script(&c, Y).contains("menu netboot"), "{}", script(&c, Y));
    assert_eq!(held_version(&c), None);

    let dir = fleet.tmp.path();
    let v10 = sign(dir, &fleet.key, &policy("img-a"), 10, &[]);
    let (ok, out) = publish(&a, &v10);
    assert!(ok && out.contains("holds boot policy v10"), "{out}");
    wait_until(
        "C to hold policy v10",
        Duration::from_secs(30),
        &|| logs(&nc),
        || held_version(&c) == Some(10),
    );
    assert_eq!(boots(&script(&c, X)), "img-a", "{}", script(&c, X));
    assert_eq!(boots(&script(&c, X)), "img-a");
    assert_eq!(boots(&script(&c, Y)), "img-b", "{}", script(&c, Y));
    let overrides = nc
        .log_text()
        .lines()
        .filter(|l| {
            l.contains(&format!(
                "{X}: policy v10 rule 1 \"x-at-c\" gives image img-a"
            )) && l.contains("[machines] assigns image img-b: the policy wins")
        })
        .count();
    assert_eq!(
        overrides,
        1,
        "logged once for two boots:\n{}",
        nc.log_text()
    );
    assert_eq!(boots(&script(&b, X)), "img-b", "the rule names site-c only");
    let c_log = nc.log_text();
    assert!(
        c_log.contains("boot policy v10 from 127.0.0.1") && c_log.contains("held and applied now"),
        "C learned the policy from B, its only peer:\n{c_log}"
    );
    assert!(
        c_log.contains(&format!(
            "client {X} boots img-a v1 (policy v10 rule 1 \"x-at-c\")"
        )),
        "the boot line names the rule:\n{c_log}"
    );

    // Bad policies, sent by a scripted peer (which checks nothing) to A, the first hop, and
    // to C directly: each is refused and logged where it arrives, and never passed on (B
    // never hears of them).
    let (stranger, _) = keygen(dir, "stranger.key");
    let forged = {
        let good = sign(dir, &fleet.key, &policy("img-b"), 20, &[]);
        let mut bytes = std::fs::read(&good).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let path = dir.join("forged.nbpol");
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let untrusted = sign(dir, &stranger, &policy("img-b"), 21, &[]);
    let expired = sign(dir, &fleet.key, &policy("img-b"), 22, &["--expires", "1s"]);
    let older = sign(dir, &fleet.key, &policy("img-b"), 9, &[]);
    std::thread::sleep(Duration::from_millis(2100));
    let peer_key = dir.join("peer.key");
    // (file, what the refusal says)
    let bad = [
        (&forged, "signature does not verify"),
        (&untrusted, "not a trusted publisher"),
        (&expired, "v22 expired"),
        (&older, "v9 is not newer than v10"),
    ];
    for (node, process) in [(&a, &na), (&c, &nc)] {
        for (file, why) in &bad {
            let out = run(
                Command::new(fleet_peer())
                    .arg("announce-policy")
                    .arg(&peer_key)
                    .arg(node.addr())
                    .arg(file),
                true,
            );
            let answer = String::from_utf8_lossy(&out.stdout);
            assert!(
                answer.starts_with("REFUSED") && answer.contains(why),
                "{answer}"
            );
            let log = process.log_text();
            assert!(
                log.lines().any(|l| l.contains("boot policy from")
                    && l.to_lowercase().contains("refused")
                    && l.contains(why)),
                "{} logs the refusal ({why}):\n{log}",
                node.name
            );
        }
    }
    // The CLI says why the node refused, and fails.
    let (ok, out) = publish(&a, &older);
    assert!(
        !ok && out.contains("REFUSED") && out.contains("not newer"),
        "{out}"
    );
    assert_eq!(held_version(&a), Some(10));
    assert_eq!(held_version(&c), Some(10));
    let b_log = nb.log_text();
    assert!(
        !b_log
            .lines()
            .any(|l| l.contains("boot policy") && l.to_lowercase().contains("refused"))
            && !b_log.contains("v21")
            && !b_log.contains("v22"),
        "nothing refused reached B:\n{b_log}"
    );

    // A new version changes C's answer for X, in the same process.
    let pid = nc.pid();
    let v11 = sign(dir, &fleet.key, &policy("img-b"), 11, &[]);
    assert!(publish(&a, &v11).0);
    wait_until(
        "C to give X img-b under v11",
        Duration::from_secs(30),
        &|| logs(&nc),
        || boots(&script(&c, X)) == "img-b",
    );
    assert_eq!(held_version(&c), Some(11));
    assert_eq!(nc.pid(), pid);

    // C down (a partition, as far as the fleet can tell); A gets v12; C back → catches up.
    drop(nc);
    let v12 = sign(dir, &fleet.key, &policy("img-a"), 12, &[]);
    assert!(publish(&a, &v12).0);
    wait_until(
        "B to hold v12",
        Duration::from_secs(30),
        &|| nb.log_text(),
        || held_version(&b) == Some(12),
    );
    nc = NodeProcess::start(&c.config, None);
    assert!(
        nc.log_text().contains("boot policy v11 held: applying it"),
        "after a restart C applies the policy it holds (re-admitted from its data dir):\n{}",
        nc.log_text()
    );
    wait_until(
        "C to catch up to v12",
        Duration::from_secs(30),
        &|| logs(&nc),
        || held_version(&c) == Some(12),
    );
    assert_eq!(boots(&script(&c, X)), "img-a");
}
