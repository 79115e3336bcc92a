//! Helpers for end-to-end tests: find the `netboot` binary, run it, make test content.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

pub mod fleet_sites;
pub mod metrics;
pub mod wan;

/// The `netboot` binary under test: `$NETBOOT_BIN`, or the one cargo built next to this test.
pub fn netboot_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NETBOOT_BIN") {
        return PathBuf::from(path);
    }
    // Test executables live in target/<profile>/deps/; the binary in target/<profile>/.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("netboot");
    assert!(
        bin.exists(),
        "the netboot binary is not built at {}: run `cargo build -p netboot-cli` first (the README's test command does), or set NETBOOT_BIN",
        bin.display()
    );
    bin
}

pub fn netboot() -> Command {
    let mut cmd = Command::new(netboot_bin());
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs and returns output; panics with both streams if the exit status is not `expect_ok`.
pub fn run(cmd: &mut Command, expect_ok: bool) -> Output {
    let out = cmd.output().expect("spawn netboot");
    if out.status.success() != expect_ok {
        panic!(
            "{:?} exited {:?}, expected {}\nstdout:\n{}\nstderr:\n{}",
            cmd,
            out.status,
            if expect_ok { "success" } else { "failure" },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic pseudo-random content (xorshift), cheap to make in any size.
/// The HTTP status code curl gets for `url` with `args` (e.g. `-X POST`), as text.
pub fn http_code(args: &[&str], url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is needed: apt-get install curl");
    stdout(&out)
}

pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The scripted fleet member (`tests/src/bin/fleet_peer.rs`), built beside `netboot`.
pub fn fleet_peer_bin() -> PathBuf {
    let bin = netboot_bin().with_file_name("fleet_peer");
    assert!(
        bin.exists(),
        "{} missing: cargo build -p netboot-tests --bins",
        bin.display()
    );
    bin
}

/// A publisher key made with `netboot keygen`; returns (key file, public key text).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = run(netboot().arg("keygen").arg("--out").arg(&path), true);
    (path, stdout(&out).trim().to_string())
}

/// A `netboot node` process for a test, killed on drop. Its log goes to a file.
pub struct NodeProcess {
    child: std::process::Child,
    pub log: PathBuf,
}

/// The logs of several nodes, each under its name: what a failing fleet test prints.
pub fn logs_of(nodes: &[(&str, &NodeProcess)]) -> String {
    nodes
        .iter()
        .map(|(name, node)| format!("--- {name} ---\n{}", node.log_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Like [`logs_of`], with the log of the node named `first` (case aside) leading: a failing
/// assertion about one site is read from that site's log, and CI keeps only the head of a
/// long output.
pub fn logs_of_first(first: &str, nodes: &[(&str, &NodeProcess)]) -> String {
    let (lead, rest): (Vec<_>, Vec<_>) = nodes
        .iter()
        .partition(|(name, _)| name.eq_ignore_ascii_case(first));
    logs_of(&[lead, rest].concat())
}

impl NodeProcess {
    /// Starts `netboot node --config <config>` (optionally inside a network namespace) and
    /// waits until it logs that it is up.
    pub fn start(config: &Path, netns: Option<&str>) -> NodeProcess {
        let cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(netboot_bin());
                c
            }
            None => Command::new(netboot_bin()),
        };
        Self::start_cmd(config, cmd, &[])
    }

    /// Like [`start`](Self::start) on loopback, with more arguments to `netboot node`.
    pub fn start_with_args(config: &Path, args: &[&str]) -> NodeProcess {
        Self::start_cmd(config, Command::new(netboot_bin()), args)
    }

    /// Like [`start`](Self::start) on loopback, with at most `nofile` open files (what
    /// systemd's default `LimitNOFILE` gives a service), through util-linux's `prlimit`.
    pub fn start_with_nofile(config: &Path, nofile: u32) -> NodeProcess {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(netboot_bin());
        Self::start_cmd(config, cmd, &[])
    }

    fn start_cmd(config: &Path, mut cmd: Command, args: &[&str]) -> NodeProcess {
        let log = config.with_extension("log");
        let log_file = std::fs::File::create(&log).expect("create node log");
        cmd.arg("node")
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG");
        // A failing fleet test is read from its nodes' logs; `NETBOOT_TEST_LOG` (a RUST_LOG
        // filter, e.g. `info,netboot_node::fleet=debug`) makes them say more.
        if let Ok(filter) = std::env::var("NETBOOT_TEST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        let child = cmd
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn netboot node");
        let mut node = NodeProcess { child, log };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = node.log_text();
            if text.contains("netboot node up") {
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("netboot node exited ({status}) before it was up:\n{text}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "netboot node not up after 30 s:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that passes prints no log, and its temporary directory goes with it. To read
        // how a run that passed went (next to one that failed, for a flaky test),
        // `NETBOOT_TEST_LOG_DIR=<dir>` keeps a copy of every node's log there, as
        // `<pid>-<config's directory>-<config name>.log`.
        if let Some(dir) = std::env::var_os("NETBOOT_TEST_LOG_DIR") {
            let name = |p: Option<&Path>| {
                p.and_then(Path::file_name)
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            };
            let (site, file) = (name(self.log.parent()), name(Some(&self.log)));
            let kept = Path::new(&dir).join(format!("{}-{site}-{file}", self.child.id()));
            let _ = std::fs::create_dir_all(&dir);
            if let Err(e) = std::fs::copy(&self.log, &kept) {
                eprintln!(
                    "NETBOOT_TEST_LOG_DIR: cannot keep {}: {e}",
                    self.log.display()
                );
            }
        }
    }
}

/// `netboot clients --config <config> ARGS`, which must succeed: its stdout.
pub fn netboot_clients(config: &Path, args: &[&str]) -> String {
    let out = run_bounded(
        netboot()
            .arg("clients")
            .arg("--config")
            .arg(config)
            .args(args),
        std::time::Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "netboot clients {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Runs `cmd` to its end, or kills it after `limit` and panics with what it printed (a
/// command expected to fail at once must not hang a test if it starts instead).
pub fn run_bounded(cmd: &mut Command, limit: std::time::Duration) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "{cmd:?} still running after {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("wait")
}

/// A network namespace with only `lo` (up), deleted on drop. Needs root (CI is root).
pub struct Netns(pub String);

impl Netns {
    pub fn new(prefix: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "`ip netns add {name}` failed: this test needs root and iproute2 (CI runs as root)"
        );
        let ns = Self(name);
        run(
            Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]),
            true,
        );
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A port free for both TCP and UDP on loopback, for a node under test to listen on.
///
/// Taken below the kernel's ephemeral range (32768–60999 by default): a port the kernel handed
/// out as ephemeral could, between this call and the node's bind, become the local port of some
/// other test's outgoing connection, and the node then fails with "Address already in use"
/// (seen in the fleet tests). Below that range only explicit binds take ports, and the counter
/// keeps this process from handing one out twice; the pid spreads concurrent test processes.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(97) % SPAN;
    for _ in 0..SPAN {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = (FIRST + offset) as u16;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN);
}

/// A loopback node under test: a temp dir with a publisher key and a node config whose
/// DHCP is off and whose TFTP/HTTP listen on free loopback ports.
pub struct LoopbackSite {
    pub tmp: tempfile::TempDir,
    pub key: PathBuf,
    pub config: PathBuf,
    pub http_port: u16,
    pub tftp_port: u16,
}

impl LoopbackSite {
    /// `extra` is appended to the config (e.g. `[boot]` or `[machines]` sections).
    pub fn new(extra: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (key, public) = keygen(tmp.path(), "publisher.key");
        let (http_port, tftp_port) = (free_port(), free_port());
        let config = tmp.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data\"\ntrusted_publishers = [\"{public}\"]\n[dhcp]\nmode = \"off\"\nserver_ip = \"127.0.0.1\"\n\
                 [tftp]\nlisten = \"127.0.0.1:{tftp_port}\"\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n{extra}"
            ),
        )
        .expect("write config");
        Self {
            tmp,
            key,
            config,
            http_port,
            tftp_port,
        }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes a source file into the site's dir and returns its path.
    pub fn file(&self, name: &str, data: &[u8]) -> String {
        let path = self.dir().join(name);
        std::fs::write(&path, data).expect("write source file");
        path.display().to_string()
    }

    /// `netboot publish --config … --key … ARGS`, which must succeed.
    pub fn publish(&self, args: &[&str]) {
        run(
            netboot()
                .args(["publish", "--config"])
                .arg(&self.config)
                .arg("--key")
                .arg(&self.key)
                .args(args),
            true,
        );
    }

    /// The blob file holding `data` in the node's store.
    pub fn blob(&self, data: &[u8]) -> PathBuf {
        self.dir()
            .join("data/blobs/data")
            .join(format!("{}.data", blake3::hash(data).to_hex()))
    }

    pub fn start(&self) -> NodeProcess {
        NodeProcess::start(&self.config, None)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

/// Polls `done` every 100 ms until it holds; panics after `limit` with `what` and `logs()`.
pub fn wait_until(
    what: &str,
    limit: std::time::Duration,
    logs: &dyn Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}\n{}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A node's `/fleet/status.json`, with the questions the fleet tests ask of it.
pub struct FleetStatus(pub serde_json::Value);

impl FleetStatus {
    pub fn parse(bytes: &[u8]) -> Self {
        Self(serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null))
    }

    /// The newest committed version of `name`.
    pub fn newest(&self, name: &str) -> Option<u64> {
        self.0["releases"].as_array().and_then(|a| {
            a.iter()
                .filter(|r| r["name"] == name)
                .filter_map(|r| r["version"].as_u64())
                .max()
        })
    }

    pub fn versions(&self) -> Vec<u64> {
        self.0["releases"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["version"].as_u64()).collect())
            .unwrap_or_default()
    }

    pub fn has_release(&self, name: &str, version: u64) -> bool {
        self.0["releases"].as_array().is_some_and(|a| {
            a.iter()
                .any(|r| r["name"] == name && r["version"] == version)
        })
    }

    /// (held, total) bytes of the release of `name` being fetched.
    pub fn held(&self, name: &str) -> Option<(u64, u64)> {
        self.0["fetching"].as_array().and_then(|a| {
            a.iter().find(|f| f["name"] == name).map(|f| {
                (
                    f["held_bytes"].as_u64().unwrap_or(0),
                    f["total_bytes"].as_u64().unwrap_or(0),
                )
            })
        })
    }

    pub fn fetching_any(&self) -> bool {
        self.0["fetching"].as_array().is_some_and(|f| !f.is_empty())
    }

    /// The status entry of the peer with this endpoint id.
    pub fn peer(&self, id: &str) -> Option<serde_json::Value> {
        self.0["peers"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["id"] == id).cloned())
    }

    /// Peers connected with a measured round trip (what the source order goes by).
    pub fn connected_peers(&self) -> usize {
        self.0["peers"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|p| p["connected"] == true && p["rtt_ms"].is_number())
                .count()
        })
    }

    /// What the peer with endpoint id `peer` said it holds of release `release` (its id):
    /// "Complete", "Fetching" or "Relaying".
    pub fn holding_of(&self, peer: &str, release: &str) -> Option<String> {
        self.peer(peer)?["holdings"]
            .as_array()?
            .iter()
            .find(|h| h["release"] == release)
            .and_then(|h| h["holding"].as_str().map(str::to_string))
    }

    /// The id of the committed release `name` v`version`.
    pub fn release_id(&self, name: &str, version: u64) -> Option<String> {
        self.0["releases"].as_array()?.iter().find_map(|r| {
            (r["name"] == name && r["version"] == version)
                .then(|| r["id"].as_str().map(str::to_string))
                .flatten()
        })
    }

    /// Verified bytes received from the peer with this endpoint id.
    pub fn received_from(&self, id: &str) -> u64 {
        self.peer(id)
            .and_then(|p| p["received_bytes"].as_u64())
            .unwrap_or(0)
    }
}
