//! Live config reload over loopback: a `[machines]` change applies on `netboot reload`
//! without restarting the node; a listen-address change is logged as needing a restart while
//! the node keeps serving on the old address; a file with a mistake is refused with its
//! FILE:LINE message (by `netboot reload` and by the node on a bare SIGHUP) and the node
//! keeps serving the config it has. In a fleet, a peer added by a reload is dialled and shown
//! connected by `netboot status`, a removed one is dropped, and a new upload limit is taken;
//! a widened fetch policy fetches a release that was only passed on before.

use std::{process::Command, time::Duration};

use netboot_tests::{
    content, fleet_sites::Fleet, free_port, logs_of, netboot, run, stderr, stdout, wait_until,
    LoopbackSite, NodeProcess,
};

const MAC: &str = "52:54:00:12:34:56";

/// The iPXE script the node gives `MAC`, or "" when nothing answers at `base`.
fn script(base: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{base}/boot.ipxe?mac={MAC}"))
        .output()
        .expect("curl is needed for these tests: apt-get install curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn reload_cmd(site: &LoopbackSite) -> Command {
    let mut cmd = netboot();
    cmd.args(["reload", "--config"]).arg(&site.config);
    cmd
}

#[test]
fn sighup_applies_machines_and_reports_what_needs_a_restart() {
    let site = LoopbackSite::new(&format!("[machines]\n\"{MAC}\" = \"debian\"\n"));
    let (k, i) = (
        site.file("vmlinuz", &content(1, 50_000)),
        site.file("initrd.img", &content(2, 20_000)),
    );
    site.publish(&["--name", "debian", "--kernel", &k, "--initrd", &i]);
    let iso = site.file("rescue.iso", &content(3, 30_000));
    site.publish(&["--name", "rescue", "--iso", &iso]);
    let mut node = site.start();
    let pid = node.pid();
    let base = site.base_url();
    let log_path = node.log.clone();
    let logs = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let first = script(&base);
    assert!(first.contains("/r/debian/1/vmlinuz"), "{first}");

    // Assign the other image; `netboot reload` finds the node by its data dir lock.
    let text = std::fs::read_to_string(&site.config).unwrap();
    let assigned = text.replace(
        &format!("\"{MAC}\" = \"debian\""),
        &format!("\"{MAC}\" = \"rescue\""),
    );
    assert_ne!(text, assigned, "the test's edit must change the file");
    std::fs::write(&site.config, &assigned).unwrap();
    let out = run(&mut reload_cmd(&site), true);
    assert!(
        stdout(&out).contains(&format!("sent SIGHUP to the node (pid {pid})")),
        "{}",
        stdout(&out)
    );
    let applied = format!("config reload: machines.\"{MAC}\" applied");
    wait_until(
        "the reload to apply",
        Duration::from_secs(20),
        &logs,
        || logs().contains(&applied),
    );
    let second = script(&base);
    assert!(
        second.contains("sanboot") && second.contains("/r/rescue/1/rescue.iso"),
        "{second}"
    );
    assert!(
        node.is_running(),
        "the same node (pid {pid}) serves the new assignment"
    );

    // A new HTTP address waits for a restart: the old one keeps serving, the new one is
    // not opened.
    let new_port = free_port();
    let moved = assigned.replace(
        &format!("listen = \"127.0.0.1:{}\"", site.http_port),
        &format!("listen = \"127.0.0.1:{new_port}\""),
    );
    assert_ne!(moved, assigned, "the test's edit must change the file");
    std::fs::write(&site.config, &moved).unwrap();
    run(&mut reload_cmd(&site), true);
    wait_until("the restart notice", Duration::from_secs(20), &logs, || {
        logs().contains("config reload: http.listen changed in")
    });
    let log = node.log_text();
    assert!(
        log.contains("needs a restart; the old value stays in use"),
        "{log}"
    );
    assert!(
        script(&base).contains("rescue.iso"),
        "old address still serves"
    );
    assert_eq!(
        script(&format!("http://127.0.0.1:{new_port}")),
        "",
        "new address not opened"
    );

    // A mistake: `netboot reload` refuses to signal; a bare SIGHUP is refused by the node.
    let broken = moved.replace(
        "[machines]",
        "[boot]\nmenu_timeout_secs = \"ten\"\n[machines]",
    );
    std::fs::write(&site.config, &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.starts_with("menu_timeout_secs"))
        .unwrap()
        + 1;
    let at = format!("{}:{line}: boot.menu_timeout_secs", site.config.display());
    let out = run(&mut reload_cmd(&site), false);
    assert!(stderr(&out).contains(&at), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the node was not signalled"),
        "{}",
        stderr(&out)
    );
    let sent = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill(1)");
    assert!(sent.success());
    wait_until("the refusal", Duration::from_secs(20), &logs, || {
        logs().contains("config reload refused")
    });
    let log = node.log_text();
    assert!(log.contains(&at), "{log}");
    assert!(node.is_running());
    assert!(
        script(&base).contains("rescue.iso"),
        "still serving the config it had"
    );
}

#[test]
fn sighup_connects_an_added_peer_drops_a_removed_one_and_takes_a_new_upload_limit() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.site("a"), fleet.site("b"));
    // B admits A from the start; A knows nobody yet.
    fleet.configure(&a, &[], &[], "");
    fleet.configure(&b, &[], &[&a.id], "");
    let (mut na, mut nb) = (
        NodeProcess::start(&a.config, None),
        NodeProcess::start(&b.config, None),
    );
    let logs = || logs_of(&[("a", &na), ("b", &nb)]);
    let reload = |peers: &[String], extra: &str| {
        fleet.configure(&a, peers, &[], extra);
        let out = run(netboot().args(["reload", "--config"]).arg(&a.config), true);
        assert!(stdout(&out).contains("sent SIGHUP"), "{}", stdout(&out));
    };
    let connected = || {
        a.status()
            .peer(&b.id)
            .is_some_and(|p| p["connected"] == true)
    };
    assert!(a.status().peer(&b.id).is_none(), "{}", logs());

    reload(&[b.addr()], "upload_limit = \"5 MB/s\"");
    wait_until(
        "A to connect to B after the reload",
        Duration::from_secs(30),
        &logs,
        connected,
    );
    let log = na.log_text();
    for line in [
        "config reload: fleet.peers applied",
        "config reload: fleet.upload_limit applied",
        "fleet: upload limit now 40.0 Mbit/s",
        &format!(
            "fleet: peer 127.0.0.1:{} ({}) added by a config reload",
            b.fleet,
            &b.id[..10]
        ),
    ] {
        assert!(log.contains(line), "no `{line}` in\n{log}");
    }
    assert!(!log.contains("needs a restart"), "{log}");
    let status = stdout(&run(
        netboot().args(["status", "--config"]).arg(&a.config),
        true,
    ));
    let row = status
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{}", b.fleet)))
        .unwrap_or_else(|| panic!("B not among the peers:\n{status}"));
    assert!(row.contains(" connected"), "{status}");

    // Removed (and not a member): A forgets B and closes the link.
    reload(&[], "");
    wait_until("A to drop B", Duration::from_secs(30), &logs, || {
        a.status().peer(&b.id).is_none()
    });
    let log = na.log_text();
    assert!(log.contains("removed by a config reload"), "{log}");
    assert!(log.contains("fleet: upload limit now unlimited"), "{log}");
    assert!(na.is_running() && nb.is_running());
}

/// `[fleet] fetch` reloads live: a release A passed on without fetching (its name was not
/// covered) is fetched at once when a reload widens the policy, with no peer offering it again.
#[test]
fn sighup_widening_the_fetch_policy_fetches_a_release_passed_on_before() {
    let fleet = Fleet::new();
    let (a, b, mut na, mut nb) = fleet.pair("fetch = [\"other-*\"]", "");
    let logs = || logs_of(&[("a", &na), ("b", &nb)]);
    wait_until("A and B to connect", Duration::from_secs(30), &logs, || {
        a.status()
            .peer(&b.id)
            .is_some_and(|p| p["connected"] == true)
    });
    let kernel = fleet.file("vmlinuz", &content(51, 300_000));
    fleet.publish_to(&b, "deb", 3, &["--kernel", &kernel]);
    wait_until(
        "A to pass deb v3 on without fetching it",
        Duration::from_secs(30),
        &logs,
        || na.log_text().contains("deb v3 from") && na.log_text().contains("not fetched here"),
    );
    assert!(!a.has_release("deb", 3), "{}", logs());

    fleet.configure(&a, &[b.addr()], &[], "fetch = [\"deb\", \"other-*\"]");
    let out = run(netboot().args(["reload", "--config"]).arg(&a.config), true);
    assert!(stdout(&out).contains("sent SIGHUP"), "{}", stdout(&out));
    wait_until(
        "A to fetch deb v3 after the reload",
        Duration::from_secs(30),
        &logs,
        || a.has_release("deb", 3),
    );
    let log = na.log_text();
    for line in [
        "config reload: fleet.fetch applied",
        "fleet: fetch policy now [deb, other-*] (was [other-*])",
        "fleet: deb v3, passed on before, is covered by the reloaded fetch policy: fetching",
    ] {
        assert!(log.contains(line), "no `{line}` in\n{log}");
    }
    assert!(!log.contains("needs a restart"), "{log}");
    assert_eq!(
        a.get("/r/deb/3/vmlinuz"),
        content(51, 300_000),
        "A serves the verified bytes"
    );
    assert!(na.is_running() && nb.is_running());
}
