//! The status page, `/status.json` and `netboot status`, on a node fetching a release from a
//! peer over loopback (slowed by the source's upload limit): headless Chromium shows the
//! release with its progress, then complete; the CLI reports the same in JSON and follows
//! the fetch with `--watch`; a command line with HTML in it is shown escaped. Screenshots are
//! kept under `target/test-artifacts/` for CI.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use netboot_tests::{
    content, fleet_sites::Fleet, http_code, logs_of, netboot, run_bounded, stdout, wait_until,
    NodeProcess,
};

/// Signed into the release; the page must print it as text, never as an element.
const HOSTILE_CMDLINE: &str = "console=ttyS0 <script>alert('status')</script>";
const ESCAPED_CMDLINE: &str = "console=ttyS0 &lt;script&gt;alert('status')&lt;/script&gt;";

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// Loads `url` in a fresh headless Chromium: returns the DOM and keeps a screenshot.
fn chromium(url: &str, screenshot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    // Network rule: the page is on loopback and Chromium must send nothing elsewhere. Without
    // the resolver rule it asks the host's DNS server about names of its own (seen with
    // strace); with it, no name resolves and only 127.0.0.1 is reached. (It still connect()s
    // an unsent UDP socket towards a public address to learn its own IPv6 source address.)
    let flags = [
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-proxy-server",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-breakpad",
        "--window-size=420,900",
    ];
    let base = |cmd: &mut Command| {
        cmd.args(flags)
            .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let which = Command::new("chromium").arg("--version").output();
    assert!(
        which.is_ok_and(|o| o.status.success()),
        "chromium is needed for the status page test: run tests/install-deps.sh (Debian package `chromium`)"
    );
    let mut dump = Command::new("chromium");
    base(&mut dump);
    dump.args(["--dump-dom", url]);
    let out = run_bounded(&mut dump, Duration::from_secs(90));
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut shot = Command::new("chromium");
    base(&mut shot);
    shot.arg(format!("--screenshot={}", screenshot.display()))
        .arg(url);
    let shot_out = run_bounded(&mut shot, Duration::from_secs(90));
    assert!(
        shot_out.status.success() && screenshot.exists(),
        "chromium --screenshot of {url} failed: {}",
        String::from_utf8_lossy(&shot_out.stderr)
    );
    stdout(&out)
}

/// The `<tr class="release" …>` row of `name` v`version` in a dumped DOM.
fn release_row<'a>(dom: &'a str, name: &str, version: u64) -> &'a str {
    let marker = format!("<b>{name}</b> v{version}");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no row for {name} v{version} in the page:\n{dom}"));
    let start = dom[..at].rfind("<tr").expect("row start");
    let end = at + dom[at..].find("</tr>").expect("row end");
    &dom[start..end]
}

fn status_json(url: &str) -> serde_json::Value {
    let out = run_bounded(
        netboot().args(["status", "--json", "--node", url]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "netboot status --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("netboot status --json prints JSON")
}

fn state_of(status: &serde_json::Value, name: &str, version: u64) -> serde_json::Value {
    status["releases"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|r| r["name"] == name && r["version"] == version)
                .map(|r| r["state"].clone())
        })
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn status_page_and_cli_follow_a_fetch_to_completion() {
    let fleet = Fleet::new();
    // 4 Mbit/s = 0.5 MB/s: 8 MB take about 16 s, time for the looks below.
    let (a, b, na, nb) = fleet.pair("upload_limit = \"4 Mbit/s\"", "");
    let logs = || logs_of(&[("a", &na), ("b", &nb)]);
    let kernel = fleet.file("vmlinuz", &content(31, 8_000_000));
    let initrd = fleet.file("initrd.img", &content(32, 100_000));
    fleet.publish_to(
        &a,
        "live",
        3,
        &[
            "--kernel",
            &kernel,
            "--initrd",
            &initrd,
            "--cmdline",
            HOSTILE_CMDLINE,
        ],
    );
    let url = b.url("");
    wait_until(
        "B to receive the first bytes of live v3",
        Duration::from_secs(30),
        &logs,
        || {
            let s = state_of(&status_json(&url), "live", 3);
            s["kind"] == "fetching" && s["source"]["bytes_per_sec"].as_u64().unwrap_or(0) > 0
        },
    );

    // The CLI: in progress, from A.
    let during = state_of(&status_json(&url), "live", 3);
    assert_eq!(during["kind"], "fetching", "{during}\n{}", logs());
    assert_eq!(during["total_bytes"], 8_100_000);
    assert!(
        during["held_bytes"].as_u64().unwrap() < 8_100_000,
        "{during}"
    );
    assert_eq!(during["source"]["peer"], a.id.as_str(), "{during}");

    // The page: the same release, fetching, with a progress bar and its source.
    let dir = artifacts();
    let tag = std::process::id();
    let dom = chromium(&url, &dir.join(format!("status-fetching-{tag}.png")));
    let row = release_row(&dom, "live", 3);
    assert!(
        row.contains(r#"data-state="fetching""#) && row.contains("<progress"),
        "the page shows live v3 still fetching? (the fetch may have outrun Chromium)\n{row}\n{}",
        logs()
    );
    assert!(row.contains("fetching ") && row.contains(" % ("), "{row}");
    let from_a = format!("from 127.0.0.1:{} ({})", a.fleet, &a.id[..10]);
    assert!(row.contains(&from_a), "no `{from_a}` in {row}");
    // The signed command line is text, not markup.
    assert!(
        !dom.contains("<script"),
        "a script element in the DOM:\n{dom}"
    );
    assert!(dom.contains(ESCAPED_CMDLINE), "{row}");
    assert!(dom.contains(&a.id), "peer A missing from the page:\n{dom}");

    // `--watch` follows it until it is committed (lines, without a terminal).
    let watched = run_bounded(
        netboot().args(["status", "--watch", "--node", &url]),
        Duration::from_secs(120),
    );
    let text = stdout(&watched);
    assert!(
        watched.status.success() && text.contains("live v3: complete"),
        "netboot status --watch:\n{text}\n{}\n{}",
        String::from_utf8_lossy(&watched.stderr),
        logs()
    );
    assert!(text.contains("live v3: fetching "), "{text}");

    let after = state_of(&status_json(&url), "live", 3);
    assert_eq!(after["kind"], "complete", "{after}");
    let dom = chromium(&url, &dir.join(format!("status-complete-{tag}.png")));
    let row = release_row(&dom, "live", 3);
    assert!(
        row.contains(r#"data-state="complete""#) && !row.contains("<progress"),
        "{row}"
    );
    assert!(dom.contains(ESCAPED_CMDLINE) && !dom.contains("<script"));

    // The terminal table, and a read-only server.
    let table = stdout(&run_bounded(
        netboot().args(["status", "--node", &url]),
        Duration::from_secs(30),
    ));
    assert!(
        table.contains("live v3") && table.contains("complete"),
        "{table}"
    );
    assert_eq!(http_code(&["-X", "POST"], &url), "405");
    drop((na, nb));
}

/// A node without a fleet: the CLI finds it from its config and shows the client that just
/// asked it for a boot script.
#[test]
fn status_of_a_standalone_node_from_its_config() {
    let site = netboot_tests::LoopbackSite::new("");
    let kernel = site.file("vmlinuz", &content(41, 1000));
    site.publish(&["--name", "demo", "--kernel", &kernel]);
    let node: NodeProcess = site.start();
    let script = Command::new("curl")
        .args([
            "-sf",
            &format!(
                "{}/boot.ipxe?mac=52%3A54%3A00%3Ab0%3A07%3A5a&ip=127.0.0.1",
                site.base_url()
            ),
        ])
        .output()
        .expect("curl");
    assert!(script.status.success(), "{}", node.log_text());
    let json = status_json(&site.base_url());
    let boot = &json["boots"][0];
    assert_eq!(boot["mac"], "52:54:00:b0:07:5a", "{json}");
    assert_eq!(boot["reached"], "config", "{json}");
    let out = run_bounded(
        netboot().args(["status", "--config"]).arg(&site.config),
        Duration::from_secs(30),
    );
    let text = stdout(&out);
    assert!(
        out.status.success()
            && text.contains("no [fleet] section")
            && text.contains("52:54:00:b0:07:5a"),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log_text()
    );
}
