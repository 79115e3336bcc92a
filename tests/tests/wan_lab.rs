//! Self-test of the WAN emulation harness (tests/wan/wan.sh, wan_delay, netboot_tests::wan):
//! configured RTTs and rates are what traffic sees, cuts partition and heals restore, a dead
//! delayer is detected, and teardown leaves nothing behind (also in an adopted namespace).
//!
//! Needs root, iproute2, iptables, iputils-ping, curl and python3 (tests/install-deps.sh
//! installs them); fails, never skips, without them.

use std::{
    net::Ipv4Addr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use netboot_tests::wan::{Cut, Wan};

/// RTTs (ms) of `n` pings from `site` to `to`. `ping -U`: user-to-user time; plain ping's
/// kernel timestamp is taken before the delayer holds the packet and under-reports.
fn ping_rtts(wan: &Wan, site: &str, to: Ipv4Addr, n: usize) -> Vec<f64> {
    let out = wan
        .cmd(site, "ping")
        .args([
            "-U",
            "-n",
            "-i",
            "0.1",
            "-W",
            "2",
            "-c",
            &n.to_string(),
            &to.to_string(),
        ])
        .output()
        .expect("run ping (Debian package iputils-ping)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ping {site} -> {to} failed ({}):\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter_map(|l| {
            l.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn assert_rtt(wan: &Wan, site: &str, to: Ipv4Addr, want_ms: f64) -> f64 {
    let rtts = ping_rtts(wan, site, to, 5);
    assert_eq!(rtts.len(), 5, "lost pings {site} -> {to}: {rtts:?}");
    let got = median(rtts.clone());
    let tolerance = want_ms * 0.4 + 2.0;
    assert!(
        (got - want_ms).abs() <= tolerance,
        "{site} -> {to}: median RTT {got:.2} ms, configured {want_ms} ms (±{tolerance:.1}); all: {rtts:?}"
    );
    eprintln!("rtt {site} -> {to}: median {got:.2} ms (configured {want_ms}) {rtts:?}");
    got
}

/// One ping with a 1 s timeout; true if answered.
fn reachable(wan: &Wan, site: &str, to: Ipv4Addr) -> bool {
    wan.cmd(site, "ping")
        .args(["-n", "-c", "1", "-W", "1", &to.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run ping")
        .success()
}

fn reachable_within(wan: &Wan, site: &str, to: Ipv4Addr, tries: usize) -> bool {
    (0..tries).any(|_| reachable(wan, site, to))
}

/// Kills the child on drop (the lab's teardown would too, but not for adopted namespaces).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A namespace made by the test itself (stands in for a PXE lab's server namespace).
struct OwnNs(String);

impl OwnNs {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("nbwt-{}-{nanos:08x}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip (Debian package iproute2)")
            .success();
        assert!(ok, "ip netns add {name} failed");
        OwnNs(name)
    }

    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?} in {}: {out:?}", self.0);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for OwnNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pid_alive(pid: u32) -> bool {
    // a zombie counts as gone (the machine's init reaps orphans slowly)
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit_once(") ").map(|(_, r)| r.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        })
        .unwrap_or(false)
}

/// Download speed (Mbit/s) of `url` fetched with curl from `site`.
fn download_mbit(wan: &Wan, site: &str, url: &str) -> f64 {
    let out = wan
        .cmd(site, "curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--max-time",
            "20",
            "-w",
            "%{speed_download}",
            url,
        ])
        .output()
        .expect("run curl (Debian package curl)");
    assert!(
        out.status.success(),
        "curl {url} in {site}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes_per_s: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("curl speed_download");
    bytes_per_s * 8.0 / 1e6
}

#[test]
fn wan_lab() {
    let started = Instant::now();
    let own_ns = OwnNs::new();
    let wan = Wan::up();
    let id = wan.id().to_string();
    let dir = wan.dir().to_path_buf();
    for s in ["a", "b", "c"] {
        let ns = wan.site(s);
        assert_eq!(ns, format!("nbw-{id}-{s}"));
    }
    let (a_ab, b_ab) = wan.link("a", "b", 10, Some(20));
    let (b_bc, c_bc) = wan.link("b", "c", 10, None);
    let (a_ac, c_ac) = wan.link("a", "c", 80, None);
    assert_eq!(wan.delayer_pids().len(), 6);
    wan.check();
    eprintln!("lab {id} up in {:?}", started.elapsed());

    // Latency, both directions of a link see it
    assert_rtt(&wan, "a", b_ab, 10.0);
    assert_rtt(&wan, "b", a_ab, 10.0);
    assert_rtt(&wan, "b", c_bc, 10.0);
    assert_rtt(&wan, "a", c_ac, 80.0);
    assert_rtt(&wan, "c", a_ac, 80.0);

    // Rate: 20 Mbit/s on a-b; b-c is not limited
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("5m"), vec![0x5a; 5_000_000]).unwrap();
    let port = 8080;
    let _server = KillOnDrop(
        wan.cmd("b", "python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
                &port.to_string(),
                "--directory",
            ])
            .arg(files.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run python3 (Debian package python3)"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wan
        .cmd("c", "curl")
        .args(["-sf", "-o", "/dev/null", "--max-time", "1"])
        .arg(format!("http://{b_bc}:{port}/"))
        .status()
        .unwrap()
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "python3 http.server in b not up after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let limited = download_mbit(&wan, "a", &format!("http://{b_ab}:{port}/5m"));
    let free = download_mbit(&wan, "c", &format!("http://{b_bc}:{port}/5m"));
    eprintln!(
        "rate a <- b (20 Mbit/s link): {limited:.1} Mbit/s; c <- b (unlimited): {free:.1} Mbit/s"
    );
    assert!(
        (14.0..=22.0).contains(&limited),
        "a <- b over the 20 Mbit/s link: {limited:.1} Mbit/s"
    );
    assert!(
        free > 40.0,
        "c <- b over the unlimited link: only {free:.1} Mbit/s"
    );

    // Partitions: both kinds, the other links stay up
    for how in [Cut::Down, Cut::Drop] {
        wan.cut("a", "c", how);
        assert!(
            !reachable(&wan, "a", c_ac),
            "{how:?}: c still reachable from a"
        );
        assert!(
            !reachable(&wan, "c", a_ac),
            "{how:?}: a still reachable from c"
        );
        assert!(reachable(&wan, "a", b_ab), "{how:?}: cutting a-c broke a-b");
        wan.heal("c", "a");
        assert!(
            reachable_within(&wan, "a", c_ac, 3),
            "{how:?}: c unreachable after heal"
        );
        assert!(
            reachable_within(&wan, "c", a_ac, 3),
            "{how:?}: a unreachable after heal"
        );
    }
    wan.check();

    // An adopted namespace: linked like the others, cleaned but kept on teardown
    wan.adopt_site("d", &own_ns.0);
    let (_a_ad, d_ad) = wan.link("a", "d", 20, None);
    assert_rtt(&wan, "a", d_ad, 20.0);
    let pids = wan.delayer_pids();
    assert_eq!(pids.len(), 8);
    // A dead delayer blackholes its side, and check() says so
    let d_side = pids[7];
    assert!(Command::new("kill")
        .args(["-KILL", &d_side.to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(d_side) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = wan.try_check().expect_err("check() missed a dead delayer");
    assert!(report.contains(&format!("pid {d_side}")), "{report}");
    assert!(
        !reachable(&wan, "a", d_ad),
        "traffic into d passed a dead delayer"
    );

    drop(wan);
    let list = netns_list();
    assert!(
        !list.contains(&format!("nbw-{id}-")),
        "namespaces left: {list}"
    );
    assert!(
        list.contains(&own_ns.0),
        "teardown deleted the adopted namespace: {list}"
    );
    let links = own_ns.exec(&["ip", "-o", "link"]);
    assert!(
        !links.contains("nbw"),
        "veth left in adopted namespace: {links}"
    );
    let rules = own_ns.exec(&["iptables", "-t", "raw", "-S"]);
    assert!(
        !rules.contains("nbw-"),
        "rules left in adopted namespace: {rules}"
    );
    for pid in &pids {
        assert!(
            !pid_alive(*pid),
            "delayer {pid} still running after teardown"
        );
    }
    assert!(!dir.exists(), "lab dir {} left", dir.display());
    eprintln!("wan_lab total {:?}", started.elapsed());
}
