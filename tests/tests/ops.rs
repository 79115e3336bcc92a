//! Running netboot as a service: `netboot init`, `netboot check-config`, `--log-format json`.

use std::{
    fs,
    io::{Read, Write},
    path::Path,
    time::Duration,
};

use netboot_tests::{netboot, run, stderr, stdout, wait_until, LoopbackSite, NodeProcess};

fn init(dir: &Path, role: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    netboot()
        .args(["init", "--role", role, "--interface", "lo", "--out"])
        .arg(out)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .output()
        .expect("spawn netboot init")
}

#[test]
fn init_writes_a_config_that_passes_check_config_and_never_overwrites_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut ids = Vec::new();
    for role in ["origin", "branch", "lab"] {
        let out = dir.join(format!("etc/{role}.toml"));
        let done = init(dir, role, &out, &[]);
        assert!(done.status.success(), "{role}: {}", stderr(&done));
        let id = stdout(&done).trim().to_string();
        assert!(
            id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{role}: node id {id:?}"
        );
        let text = fs::read_to_string(&out).unwrap();
        assert!(
            text.contains(&id) && text.contains("interface = \"lo\""),
            "{text}"
        );
        let next = stderr(&done);
        for step in [
            "trusted_publishers",
            "netboot publish",
            "systemctl",
            "http://127.0.0.1/",
        ] {
            assert!(
                next.contains(step),
                "{role}: next steps lack {step:?}:\n{next}"
            );
        }
        let check = run(netboot().arg("check-config").arg(&out), true);
        assert!(stdout(&check).contains(": ok ("), "{}", stdout(&check));
        ids.push(id);
    }
    // One identity, created once in the data dir, and the one `netboot node-id` prints.
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(dir.join("data/fleet.key").exists());
    let node_id = run(
        netboot()
            .arg("node-id")
            .arg("--data-dir")
            .arg(dir.join("data")),
        true,
    );
    assert_eq!(stdout(&node_id).trim(), ids[0]);

    let out = dir.join("etc/lab.toml");
    fs::write(&out, "# the operator's own\n").unwrap();
    let again = init(dir, "branch", &out, &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "# the operator's own\n");
    let forced = init(dir, "branch", &out, &["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(fs::read_to_string(&out)
        .unwrap()
        .contains("mode = \"proxy\""));
}

#[test]
fn check_config_names_file_line_and_field_of_every_mistake_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("netboot.toml");
    let data_dir = tmp.path().join("never-created");
    let text = format!(
        r#"data_dir = "{}"
trusted_publishers = ["ed25519:1234"]
[dhcp]
mode = "server"
server_ip = "192.168.9.1"
[dhcp.pool]
range_start = "10.0.0.100"
range_end = "10.0.0.200"
subnet_mask = "255.255.255.0"
[http]
listen = 8080
[tftp]
max_transfer = 4
[boot]
bios_loader = "grub"
"#,
        data_dir.display()
    );
    fs::write(&file, text).unwrap();
    let out = run(netboot().arg("check-config").arg(&file), false);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let f = file.display();
    for want in [
        format!("{f}:2: trusted_publishers: "),
        format!("{f}:5: dhcp.server_ip: 192.168.9.1 is outside the pool's subnet"),
        format!("{f}:11: http.listen: invalid type"),
        format!("{f}:13: tftp.max_transfer: unknown field"),
        format!("{f}:15: boot.bios_loader: "),
        format!("{f}: 5 mistakes"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!data_dir.exists(), "check-config created the data dir");

    fs::write(&file, "[dhcp\nmode = \"proxy\"\n").unwrap();
    let err = stderr(&run(netboot().arg("check-config").arg(&file), false));
    assert!(err.contains(&format!("{f}:1: syntax: ")), "{err}");

    let missing = tmp.path().join("nope.toml");
    let err = stderr(&run(netboot().arg("check-config").arg(&missing), false));
    assert!(err.contains("nope.toml: cannot read"), "{err}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_client_as_a_field() {
    let site = LoopbackSite::new("");
    let node = NodeProcess::start_with_args(&site.config, &["--log-format", "json"]);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", site.http_port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    let objects = || -> Vec<serde_json::Value> {
        node.log_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let is_405 = |o: &serde_json::Value| {
        o["message"]
            .as_str()
            .is_some_and(|m| m.contains("POST /x: 405"))
    };
    wait_until(
        "the 405 line",
        Duration::from_secs(10),
        &|| node.log_text(),
        || objects().iter().any(is_405),
    );
    let all = objects();
    let line = all.iter().find(|o| is_405(o)).unwrap();
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["span"]["name"], "http", "{line}");
    assert_eq!(line["span"]["client"], "127.0.0.1", "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert!(
        all.iter().any(|o| o["message"]
            .as_str()
            .is_some_and(|m| m.contains("netboot node up"))),
        "{all:?}"
    );
}

/// The package's default config is valid TOML with known fields, and lacks only the host's
/// interface, which check-config (the unit's ExecStartPre) names until it is set.
#[test]
fn the_packaged_default_config_needs_only_the_interface() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/debian/netboot.toml");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("netboot.toml");
    fs::copy(&shipped, &file).unwrap();
    let out = run(netboot().arg("check-config").arg(&file), false);
    let err = stderr(&out);
    assert!(
        err.contains(": dhcp.server_ip: not set") && err.contains(": 1 mistake\n"),
        "{err}"
    );
    let text = fs::read_to_string(&shipped).unwrap() + "interface = \"lo\"\n";
    fs::write(&file, text).unwrap();
    run(netboot().arg("check-config").arg(&file), true);
}
