//! The node's record of its machines survives a restart: a machine that fetched its boot
//! script, kernel and initrd over loopback is listed by `netboot clients` with its image and
//! stages after the node was stopped and started again; a machine nothing is assigned to is
//! listed by `--unknown`; a damaged record file is set aside and the node starts anyway;
//! `POST /boot/done` refuses a machine with no one-shot boot pending.
//! (No DHCP here: the loopback harness runs the node with DHCP off; the record's DHCP side
//! is unit tested in `node/src/clients/tests.rs`.)

use std::{process::Command, time::Duration};

use netboot_tests::{content, http_code, netboot_clients, wait_until, LoopbackSite, NodeProcess};

const KNOWN: &str = "52:54:00:12:34:56";
const UNKNOWN: &str = "52:54:00:00:00:09";

/// `netboot clients --config <site> ARGS`, which must succeed.
fn clients(site: &LoopbackSite, args: &[&str]) -> String {
    netboot_clients(&site.config, args)
}

fn machines(site: &LoopbackSite, args: &[&str]) -> Vec<serde_json::Value> {
    let text = clients(site, &[&["--json"], args].concat());
    let view: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    view["machines"].as_array().cloned().unwrap_or_default()
}

fn find<'a>(list: &'a [serde_json::Value], mac: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|m| m["mac"] == mac)
}

/// SIGTERM, and wait until the process is gone (it saves the record on its way out).
fn stop(mut node: NodeProcess) {
    let sent = Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let log = node.log.clone();
    wait_until(
        "the node to exit after SIGTERM",
        Duration::from_secs(30),
        &|| std::fs::read_to_string(&log).unwrap_or_default(),
        || !node.is_running(),
    );
}

#[test]
fn the_client_record_survives_a_restart_and_lists_unknown_machines() {
    let site = LoopbackSite::new(&format!("[machines]\n\"{KNOWN}\" = \"debian\"\n"));
    let (k, i) = (
        site.file("vmlinuz", &content(41, 100_000)),
        site.file("initrd.img", &content(42, 50_000)),
    );
    site.publish(&["--name", "debian", "--kernel", &k, "--initrd", &i]);
    let node = site.start();
    let base = site.base_url();
    // The unknown machine first: both come from 127.0.0.1, and the address names whoever
    // identified last.
    assert_eq!(
        http_code(&[], &format!("{base}/boot.ipxe?mac={UNKNOWN}")),
        "200"
    );
    for path in [
        format!("/boot.ipxe?mac={KNOWN}&ip=127.0.0.1"),
        "/r/debian/1/vmlinuz".into(),
        "/r/debian/1/initrd.img".into(),
    ] {
        assert_eq!(http_code(&[], &format!("{base}{path}")), "200", "{path}");
    }

    // While it runs: written within a few seconds, without a shutdown.
    let file = site.dir().join("data/clients.json");
    wait_until(
        "data/clients.json to hold the machine's initrd",
        Duration::from_secs(30),
        &|| node.log_text(),
        || {
            std::fs::read_to_string(&file)
                .is_ok_and(|t| t.contains(KNOWN) && t.contains("\"initrd\""))
        },
    );
    stop(node);

    let node = site.start();
    let listed = machines(&site, &[]);
    let m = find(&listed, KNOWN)
        .unwrap_or_else(|| panic!("{KNOWN} not listed after a restart: {listed:?}"));
    assert_eq!(m["image"]["name"], "debian", "{m}");
    assert_eq!(m["image"]["version"], 1, "{m}");
    let stages = &m["last_boot"]["stages"];
    for stage in ["config", "kernel", "initrd"] {
        assert!(
            stages[stage].as_u64().is_some_and(|t| t > 0),
            "no {stage} time in {m}"
        );
    }
    assert!(find(&listed, UNKNOWN).is_some(), "{listed:?}");

    let unknown = machines(&site, &["--unknown"]);
    assert!(
        find(&unknown, UNKNOWN).is_some() && find(&unknown, KNOWN).is_none(),
        "{unknown:?}"
    );
    // The one-shot callback: POST only, needs a MAC, and marks only a pending one-shot
    // (none here: `[machines]` has no one-shot rules), with a log line either way.
    let done = format!("{base}/boot/done?mac={KNOWN}");
    assert_eq!(http_code(&["-X", "POST"], &done), "409");
    assert_eq!(http_code(&[], &done), "405");
    assert_eq!(
        http_code(&["-X", "POST"], &format!("{base}/boot/done")),
        "400"
    );
    let log = node.log_text();
    assert!(
        log.contains(&format!(
            "/boot/done?mac={KNOWN}: 409: {KNOWN} has no one-shot boot pending"
        )),
        "{log}"
    );
    let table = clients(&site, &[]);
    let row = table
        .lines()
        .find(|l| l.starts_with(KNOWN))
        .unwrap_or_else(|| panic!("no row for {KNOWN}:\n{table}"));
    assert!(
        row.contains("debian v1") && row.ends_with("initrd"),
        "{table}"
    );
    stop(node);

    // A damaged file: set aside with a line naming it, and the node starts with an empty record.
    std::fs::write(&file, b"{\"format\": 1, \"machines\": [").unwrap();
    let node = site.start();
    let log = node.log_text();
    assert!(
        log.contains(&format!("{} is not a client record", file.display())),
        "{log}"
    );
    assert!(site.dir().join("data/clients.json.damaged").exists());
    assert!(machines(&site, &[]).is_empty());
    drop(node);
}
