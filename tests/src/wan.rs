//! Emulated WAN for fleet tests: sites are network namespaces, links are veth pairs with a
//! one-way delay (`wan_delay` on NFQUEUE), an optional `tbf` rate limit and partitions on
//! demand. A thin wrapper over `tests/wan/wan.sh` (see `tests/wan/README.md`); needs root.
//!
//! ```no_run
//! use netboot_tests::wan::{Cut, Wan};
//! let wan = Wan::up();
//! wan.site("a");
//! wan.site("b");
//! let (ip_a, ip_b) = wan.link("a", "b", 40, Some(20)); // 40 ms RTT, 20 Mbit/s
//! let out = wan.run("a", &["ping", "-U", "-c", "1", &ip_b.to_string()]);
//! wan.cut("a", "b", Cut::Drop);
//! wan.heal("a", "b");
//! wan.check(); // every delayer still alive
//! // dropping `wan` tears everything down (also when the test panics)
//! ```

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Mutex,
};

/// How [`Wan::cut`] partitions a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Both ends link down: senders get "network unreachable" at once.
    Down,
    /// DROP on both ingresses: packets vanish, senders see timeouts.
    Drop,
}

/// One WAN lab (`wan.sh up`); torn down (`wan.sh down`) on drop.
pub struct Wan {
    env: PathBuf,
    dir: PathBuf,
    id: String,
    /// site name → namespace
    sites: Mutex<BTreeMap<String, String>>,
}

/// `tests/wan/wan.sh` of this checkout.
pub fn wan_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wan/wan.sh")
}

/// The `wan_delay` binary: `$WAN_DELAY_BIN`, or the one cargo built next to the running test
/// (`target/<profile>/wan_delay`). Panics, saying how to build it, if there is none.
pub fn wan_delay_bin() -> PathBuf {
    find_wan_delay_bin().unwrap_or_else(|e| panic!("{e}"))
}

fn find_wan_delay_bin() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("WAN_DELAY_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // test executables: target/<profile>/deps/x; binaries: target/<profile>/x
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("wan_delay"))
        .collect();
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        format!(
            "the wan_delay binary is not built (looked at {candidates:?}): run `cargo build -p netboot-tests --bins`, or set WAN_DELAY_BIN"
        )
    })
}

fn key_values(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `wan.sh ARGS`; panics with its stderr unless it succeeds. Returns its KEY=VALUE lines.
fn wan_sh(args: &[&str]) -> BTreeMap<String, String> {
    let out = wan_sh_output(args);
    if !out.status.success() {
        panic!(
            "`wan.sh {}` failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    key_values(&String::from_utf8_lossy(&out.stdout))
}

fn wan_sh_output(args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(wan_script()).args(args);
    // `up` records it in wan.env; the other commands take it from there
    if let Ok(bin) = find_wan_delay_bin() {
        cmd.env("WAN_DELAY_BIN", bin);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", wan_script().display()))
}

impl Wan {
    /// Creates a lab (no sites yet). Panics unless running as root. First removes labs left
    /// behind by test processes that died (`wan.sh gc`).
    pub fn up() -> Wan {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "WAN lab tests need root (network namespaces, iptables, tc): run them as root, e.g. via tests/run-all.sh"
        );
        wan_delay_bin();
        let _ = wan_sh_output(&["gc"]);
        let kv = wan_sh(&["up"]);
        let get = |k: &str| {
            kv.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("`wan.sh up` printed no {k}: {kv:?}"))
        };
        Wan {
            env: PathBuf::from(get("WAN_ENV")),
            dir: PathBuf::from(get("WAN_DIR")),
            id: get("WAN_ID"),
            sites: Mutex::new(BTreeMap::new()),
        }
    }

    /// The lab's random id (6 hex chars); namespaces are `nbw-<id>-<site>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lab's scratch dir (delayer logs, state); removed on drop unless `WAN_KEEP=1`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `wan.env` file to hand to `wan.sh` commands.
    pub fn env_file(&self) -> &Path {
        &self.env
    }

    fn env_str(&self) -> &str {
        self.env.to_str().expect("utf-8 lab path")
    }

    fn add_site(&self, name: &str, kv: BTreeMap<String, String>) -> String {
        let key = format!("SITE_{}_NS", name.to_uppercase());
        let ns = kv
            .get(&key)
            .cloned()
            .unwrap_or_else(|| panic!("`wan.sh site` printed no {key}: {kv:?}"));
        self.sites
            .lock()
            .unwrap()
            .insert(name.to_string(), ns.clone());
        ns
    }

    /// A new site: namespace `nbw-<id>-<name>` with `lo` up. Returns the namespace.
    /// `name`: `[a-z][a-z0-9]{0,11}`.
    pub fn site(&self, name: &str) -> String {
        let kv = wan_sh(&["site", self.env_str(), name]);
        self.add_site(name, kv)
    }

    /// Makes the existing namespace `ns` (e.g. a PXE lab's server namespace) a site. Teardown
    /// does not delete it, only removes what the lab added there (veths, rules, delayers).
    pub fn adopt_site(&self, name: &str, ns: &str) -> String {
        let kv = wan_sh(&["site", self.env_str(), name, ns]);
        self.add_site(name, kv)
    }

    /// The namespace of site `name`.
    pub fn ns(&self, site: &str) -> String {
        self.sites
            .lock()
            .unwrap()
            .get(site)
            .cloned()
            .unwrap_or_else(|| panic!("no WAN site {site:?}"))
    }

    /// A direct link between two sites with the given round-trip time (half of it added on
    /// each receiving side) and, optionally, a rate limit on both directions. Returns the
    /// addresses of the two ends (each a /30 on the link's interface).
    pub fn link(
        &self,
        a: &str,
        b: &str,
        rtt_ms: u32,
        rate_mbit: Option<u32>,
    ) -> (Ipv4Addr, Ipv4Addr) {
        self.link_lossy(a, b, rtt_ms, rate_mbit, 0.0)
    }

    /// [`Wan::link`] that also drops `loss_pct` % of the packets in each direction (at random).
    pub fn link_lossy(
        &self,
        a: &str,
        b: &str,
        rtt_ms: u32,
        rate_mbit: Option<u32>,
        loss_pct: f64,
    ) -> (Ipv4Addr, Ipv4Addr) {
        let rate = rate_mbit.map_or("-".to_string(), |r| r.to_string());
        let kv = wan_sh(&[
            "link",
            self.env_str(),
            a,
            b,
            &rtt_ms.to_string(),
            &rate,
            &loss_pct.to_string(),
        ]);
        let (ua, ub) = (a.to_uppercase(), b.to_uppercase());
        let ip = |site: &str| -> Ipv4Addr {
            let key = format!("LINK_{ua}_{ub}_{site}");
            kv.get(&key)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("`wan.sh link` printed no address {key}: {kv:?}"))
        };
        (ip(&ua), ip(&ub))
    }

    /// Partitions the link between `a` and `b` (either order) until [`Wan::heal`].
    pub fn cut(&self, a: &str, b: &str, how: Cut) {
        let mode = match how {
            Cut::Down => "down",
            Cut::Drop => "drop",
        };
        wan_sh(&["cut", self.env_str(), a, b, mode]);
    }

    /// Undoes [`Wan::cut`] (of either kind).
    pub fn heal(&self, a: &str, b: &str) {
        wan_sh(&["heal", self.env_str(), a, b]);
    }

    /// Ok if every delayer is alive; else the script's report (which delayer, its log).
    pub fn try_check(&self) -> Result<(), String> {
        let out = wan_sh_output(&["check", self.env_str()]);
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Panics unless every delayer is alive (a dead one blackholes its side of a link).
    pub fn check(&self) {
        if let Err(report) = self.try_check() {
            panic!("WAN lab {}: a delayer died:\n{report}", self.id);
        }
    }

    /// PIDs of the lab's delayers (`wan_delay`), two per delayed link, in creation order.
    pub fn delayer_pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("delayers"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// `ip netns exec <site ns> <program>`: add arguments, then spawn/output it.
    pub fn cmd(&self, site: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(site)]).arg(program);
        cmd
    }

    /// Runs `args` in the site's namespace; panics (with both streams) unless it succeeds.
    pub fn run(&self, site: &str, args: &[&str]) -> Output {
        let (program, rest) = args.split_first().expect("a command");
        let mut cmd = self.cmd(site, program);
        cmd.args(rest);
        crate::run(&mut cmd, true)
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        let out = wan_sh_output(&["down", self.env_str()]);
        if !out.status.success() {
            // no panic here: we may already be unwinding
            eprintln!(
                "wan.sh down {} failed ({}):\n{}",
                self.env.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
