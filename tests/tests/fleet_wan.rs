//! A fleet of three sites, each a network namespace with its own node, joined by emulated WAN
//! links (tests/wan: round-trip delay by an NFQUEUE delayer, rate by tbf; this kernel has no
//! netem). Publish once at site A; site C gets the release mostly from its near neighbour B,
//! keeps booting a real PXE client (QEMU) while cut off from every other site, fails over to A
//! when B dies mid-transfer, and resumes after a restart without fetching again what it held.
//! A boot policy published at A decides which image the QEMU client boots at C, and a new
//! policy version changes it without a restart.
//!
//! Root, iproute2, iptables, QEMU and the PXE harness's packages are needed (tests/run-all.sh
//! installs them); a missing one fails the test with a message naming it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use netboot_tests::{
    logs_of, logs_of_first, netboot_bin, run, stdout, wait_until,
    wan::{Cut, Wan},
    FleetStatus, NodeProcess,
};

const FLEET_PORT: u16 = 7311;
const STATUS_PORT: u16 = 8080;

/// Sites of one test share the machine's two cores, and tests run side by side. Rules that
/// judge rates (a slot holder that lags, a copy that grows slowly) see CPU starvation as a
/// slow link; a test of those rules runs alone ([`alone_on_the_machine`]), the others together.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn sharing_the_machine() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

fn alone_on_the_machine() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The PXE lab of site C (tests/pxe/lab.sh): a server namespace for C's node and a client
/// namespace for QEMU. Torn down on drop.
struct PxeLab {
    vars: HashMap<String, String>,
    env: PathBuf,
}

impl PxeLab {
    fn up() -> Self {
        let out = Command::new(repo().join("tests/pxe/lab.sh"))
            .arg("up")
            .output()
            .expect("run tests/pxe/lab.sh");
        assert!(
            out.status.success(),
            "tests/pxe/lab.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        let env = PathBuf::from(&vars["LAB_DIR"]).join("lab.env");
        let lab = Self { vars, env };
        let ra = Command::new(repo().join("tests/pxe/lab.sh"))
            .arg("ra")
            .arg(&lab.env)
            .output()
            .expect("lab.sh ra");
        assert!(
            ra.status.success(),
            "lab.sh ra: {}",
            String::from_utf8_lossy(&ra.stderr)
        );
        lab
    }

    fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("lab.sh up printed no {k}"))
    }

    /// Boots the QEMU client (BIOS) and returns (exit code, stdout, serial log).
    fn boot_bios(&self) -> (i32, String, String) {
        let serial = PathBuf::from(self.var("LAB_DIR")).join("serial-fleet.log");
        let out = Command::new(repo().join("tests/pxe/run-qemu.sh"))
            .args(["bios"])
            .arg(&serial)
            .arg("150")
            .env("LAB_ENV", &self.env)
            .output()
            .expect("run tests/pxe/run-qemu.sh");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            std::fs::read_to_string(&serial).unwrap_or_default(),
        )
    }
}

impl Drop for PxeLab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/pxe/lab.sh"))
            .arg("down")
            .arg(&self.env)
            .status();
    }
}

/// The test boot image (cached build of a Debian kernel + busybox initramfs + check.bin).
fn boot_image() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("NETBOOT_TEST_CACHE").unwrap_or_else(|_| "/var/cache/netboot-tests".into()),
    )
    .join("image");
    let st = Command::new(repo().join("tests/pxe/build-boot-image.sh"))
        .arg(&dir)
        .status()
        .expect("run tests/pxe/build-boot-image.sh");
    assert!(st.success(), "building the test boot image failed");
    dir
}

struct Site {
    ns: String,
    dir: PathBuf,
    id: String,
}

impl Site {
    fn new(tmp: &Path, name: &'static str, ns: String) -> Self {
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = run(
            Command::new(netboot_bin())
                .args(["node-id", "--data-dir"])
                .arg(dir.join("data")),
            true,
        );
        Site {
            ns,
            dir,
            id: stdout(&out).trim().to_string(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("node.toml")
    }

    /// Writes the config; `serving` replaces the default loopback-only HTTP/no-DHCP part.
    fn configure(&self, public: &str, peers: &[String], serving: Option<String>) {
        let peers: Vec<String> = peers.iter().map(|p| format!("\"{p}\"")).collect();
        let serving = serving.unwrap_or_else(|| {
            format!(
                "[dhcp]\nmode = \"off\"\nserver_ip = \"127.0.0.1\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:{STATUS_PORT}\"\n"
            )
        });
        std::fs::write(
            self.config(),
            format!(
                "data_dir = \"data\"\ntrusted_publishers = [\"{public}\"]\n{serving}\
                 [fleet]\nlisten = \"0.0.0.0:{FLEET_PORT}\"\npeers = [{}]\nstall_timeout_secs = 3\n",
                peers.join(", ")
            ),
        )
        .unwrap();
    }

    fn start(&self) -> NodeProcess {
        NodeProcess::start(&self.config(), Some(&self.ns))
    }

    fn curl(&self, path: &str) -> Vec<u8> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-sf",
                "--max-time",
                "120",
            ])
            .arg(format!("http://127.0.0.1:{STATUS_PORT}{path}"))
            .output()
            .expect("curl");
        out.stdout
    }

    fn status(&self) -> FleetStatus {
        FleetStatus::parse(&self.curl("/fleet/status.json"))
    }

    fn has_release(&self, name: &str) -> Option<u64> {
        self.status().newest(name)
    }

    fn held(&self, name: &str) -> Option<(u64, u64)> {
        self.status().held(name)
    }

    fn received_from(&self, id: &str) -> u64 {
        self.status().received_from(id)
    }
}

fn keygen(dir: &Path) -> (PathBuf, String) {
    netboot_tests::keygen(dir, "publisher.key")
}

/// `netboot publish --to` run inside `site`'s namespace against that site's node.
fn publish_to(key: &Path, site: &Site, addr: &str, args: &[&str]) -> String {
    let out = run(
        Command::new("ip")
            .args(["netns", "exec", &site.ns])
            .arg(netboot_bin())
            .arg("publish")
            .arg("--key")
            .arg(key)
            .arg("--to")
            .arg(format!("{}@{addr}:{FLEET_PORT}", site.id))
            .args(args),
        true,
    );
    stdout(&out)
}

/// Sites a and b in WAN namespaces, and c in the PXE lab's server namespace.
fn lab_sites(tmp: &Path, lab: &PxeLab, wan: &Wan) -> (Site, Site, Site) {
    let a = Site::new(tmp, "a", wan.site("a"));
    let b = Site::new(tmp, "b", wan.site("b"));
    let c = Site::new(tmp, "c", wan.adopt_site("c", lab.var("LAB_NS_SERVER")));
    (a, b, c)
}

/// Sites a, b and c of [`lab_sites`] configured as a triangle, every pair peers: A–B and B–C
/// 10 ms, A–C `ac_rtt_ms`, all 100 Mbit/s; C serves the PXE lab with `c_extra` in its config.
/// Returns the sites and A's address on its link to B (where `publish --to` reaches A).
fn lab_triangle(
    tmp: &Path,
    public: &str,
    lab: &PxeLab,
    wan: &Wan,
    ac_rtt_ms: u32,
    c_extra: &str,
) -> (Site, Site, Site, std::net::Ipv4Addr) {
    let (a, b, c) = lab_sites(tmp, lab, wan);
    let (ab_a, ab_b) = wan.link("a", "b", 10, Some(100));
    let (bc_b, bc_c) = wan.link("b", "c", 10, Some(100));
    let (ac_a, ac_c) = wan.link("a", "c", ac_rtt_ms, Some(100));
    let peer = |s: &Site, ip: std::net::Ipv4Addr| format!("{}@{ip}:{FLEET_PORT}", s.id);
    a.configure(public, &[peer(&b, ab_b), peer(&c, ac_c)], None);
    b.configure(public, &[peer(&a, ab_a), peer(&c, bc_c)], None);
    c.configure(
        public,
        &[peer(&a, ac_a), peer(&b, bc_b)],
        Some(lab_serving(lab, &c, c_extra)),
    );
    (a, b, c, ab_a)
}

/// The `[dhcp]`/`[http]` part of the config of site C, the node in the PXE lab's server
/// namespace: DHCP server for the lab's client, HTTP on the lab address. `extra` follows.
fn lab_serving(lab: &PxeLab, c: &Site, extra: &str) -> String {
    let server_ip = lab.var("LAB_SERVER_IP");
    format!(
        "[dhcp]\nmode = \"server\"\ninterface = \"{}\"\nserver_ip = \"{server_ip}\"\n\
         [dhcp.pool]\nrange_start = \"{}\"\nrange_end = \"{}\"\nsubnet_mask = \"{}\"\nlease_file = \"{}\"\n\
         [http]\nlisten = \"0.0.0.0:{STATUS_PORT}\"\nbase_url = \"http://{server_ip}:{STATUS_PORT}\"\n{extra}",
        lab.var("LAB_IFACE_SERVER"),
        lab.var("LAB_DHCP_START"),
        lab.var("LAB_DHCP_END"),
        lab.var("LAB_NETMASK"),
        c.dir.join("leases.json").display(),
    )
}

/// Publishes iPXE's BIOS first stage as `ipxe` at `site` (reached at `addr`).
fn publish_ipxe(key: &Path, site: &Site, addr: &str) {
    let out = publish_to(
        key,
        site,
        addr,
        &[
            "--name",
            "ipxe",
            "--file",
            "undionly.kpxe=/usr/lib/ipxe/undionly.kpxe",
        ],
    );
    assert!(out.contains("published ipxe"), "{out}");
}

/// Publishes the test boot image in `image` as `name` at `site`: its check.bin tells the
/// client it booted a verified kernel and initrd.
fn publish_boot_image(key: &Path, site: &Site, addr: &str, name: &str, image: &Path) {
    let img = |f: &str| format!("{f}={}", image.join(f).display());
    let out = publish_to(
        key,
        site,
        addr,
        &[
            "--name",
            name,
            "--kernel",
            &img("vmlinuz"),
            "--initrd",
            &img("initrd.img"),
            "--file",
            &img("check.bin"),
            "--cmdline",
            "console=ttyS0 quiet panic=-1 netboot_check={{image_url}}/check.bin",
        ],
    );
    assert!(out.contains(&format!("published {name}")), "{out}");
}

/// Publishes `size` bytes of test content (seeded by `seed`) as release `name`, one file
/// `big.img`, to `site` at `addr`; returns the bytes.
fn publish_big_img(
    dir: &Path,
    key: &Path,
    site: &Site,
    addr: &str,
    name: &str,
    seed: u64,
    size: usize,
) -> Vec<u8> {
    let data = netboot_tests::content(seed, size);
    let file = dir.join("big.img");
    std::fs::write(&file, &data).unwrap();
    let big = format!("big.img={}", file.display());
    let out = publish_to(key, site, addr, &["--name", name, "--file", &big]);
    assert!(out.contains(&format!("published {name}")), "{out}");
    data
}

/// A fresh WAN lab with sites a, b and c (no links yet), their nodes' dirs and a publisher key.
fn three_sites() -> (tempfile::TempDir, PathBuf, String, Wan, Site, Site, Site) {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let wan = Wan::up();
    let a = Site::new(tmp.path(), "a", wan.site("a"));
    let b = Site::new(tmp.path(), "b", wan.site("b"));
    let c = Site::new(tmp.path(), "c", wan.site("c"));
    (tmp, key, public, wan, a, b, c)
}

/// Publish at A; C (links: B 10 ms, A 80 ms) fetches most bytes from B; then, cut off from
/// both, C's node boots a real BIOS PXE client with that release.
#[test]
fn publish_at_a_reaches_c_mostly_from_near_b_then_c_boots_a_client_while_partitioned() {
    let _turn = sharing_the_machine();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let image = boot_image();
    let lab = PxeLab::up();
    let wan = Wan::up();
    let (a, b, c, ab_a) = lab_triangle(
        tmp.path(),
        &public,
        &lab,
        &wan,
        80,
        "[boot]\ndefault_image = \"e2e\"\n",
    );
    let (na, nb, nc) = (a.start(), b.start(), c.start());
    let logs = || logs_of(&[("a", &na), ("b", &nb), ("c", &nc)]);

    publish_ipxe(&key, &a, &ab_a.to_string());
    publish_boot_image(&key, &a, &ab_a.to_string(), "e2e", &image);
    wan.check();

    wait_until(
        "C to hold e2e and ipxe",
        Duration::from_secs(120),
        &logs,
        || c.has_release("e2e").is_some() && c.has_release("ipxe").is_some(),
    );
    let (from_b, from_a) = (c.received_from(&b.id), c.received_from(&a.id));
    assert!(
        from_b > from_a,
        "C should fetch most bytes over the 10 ms link from B: {from_b} from B, {from_a} from A\n{}",
        logs()
    );
    let version = c.has_release("e2e").unwrap();

    // Site C loses both WAN links; it still boots its clients from what it holds.
    wan.cut("a", "c", Cut::Down);
    wan.cut("b", "c", Cut::Drop);
    let (code, qemu, serial) = lab.boot_bios();
    let c_log = nc.log_text();
    assert!(
        code == 0 && serial.contains("NETBOOT-E2E: PASS"),
        "boot at C failed (exit {code}): {qemu}\n--- serial ---\n{serial}\n{}",
        logs()
    );
    assert!(
        c_log.contains(&format!("GET /r/e2e/{version}/check.bin: 200")),
        "the client fetched check.bin from C's node:\n{c_log}"
    );
}

/// C fetches a large release from B (near) while A (far) also holds it. B is killed mid-way:
/// C completes from A. Then C itself restarts mid-fetch of the next release: it resumes and
/// fetches only what it did not hold.
#[test]
fn c_fails_over_to_a_when_b_dies_and_resumes_after_a_restart() {
    let _turn = sharing_the_machine();
    let (tmp, key, public, wan, a, b, c) = three_sites();
    let (ab_a, ab_b) = wan.link("a", "b", 10, Some(200));
    let (bc_b, bc_c) = wan.link("b", "c", 10, Some(40));
    let (ac_a, ac_c) = wan.link("a", "c", 40, Some(40));
    let peer = |s: &Site, ip: std::net::Ipv4Addr| format!("{}@{ip}:{FLEET_PORT}", s.id);
    a.configure(&public, &[peer(&b, ab_b), peer(&c, ac_c)], None);
    b.configure(&public, &[peer(&a, ab_a), peer(&c, bc_c)], None);
    c.configure(&public, &[peer(&a, ac_a), peer(&b, bc_b)], None);
    let (na, nb, mut nc) = (a.start(), Some(b.start()), c.start());

    let size = 40_000_000usize;
    let data1 = netboot_tests::content(41, size);
    let data2 = netboot_tests::content(42, size);
    let f1 = tmp.path().join("big1.img");
    let f2 = tmp.path().join("big2.img");
    std::fs::write(&f1, &data1).unwrap();
    std::fs::write(&f2, &data2).unwrap();
    let hash = |d: &[u8]| blake3::hash(d).to_hex().to_string();
    let publish_big = |version: u64, file: &Path| {
        let file = format!("big.img={}", file.display());
        publish_to(
            &key,
            &a,
            &ab_a.to_string(),
            &[
                "--name",
                "big",
                "--version",
                &version.to_string(),
                "--file",
                &file,
            ],
        );
    };

    // --- B dies mid-transfer ---
    publish_big(1, &f1);
    // B's log outlives B (killed below): it says where B's bytes came from.
    let b_log = nb.as_ref().map(|n| n.log.clone()).unwrap_or_default();
    let logs = |nc: &NodeProcess| {
        let b = std::fs::read_to_string(&b_log).unwrap_or_default();
        format!("{}--- b ---\n{b}", logs_of(&[("a", &na), ("c", nc)]))
    };
    wait_until(
        "B to finish (it is near A)",
        Duration::from_secs(60),
        &|| logs(&nc),
        || b.has_release("big").is_some(),
    );
    wait_until(
        "C to hold a quarter, from B",
        Duration::from_secs(60),
        &|| logs(&nc),
        || c.held("big").is_some_and(|(h, t)| h * 4 >= t) && c.received_from(&b.id) > 0,
    );
    let mut nb = nb;
    drop(nb.take()); // SIGKILL: B vanishes mid-transfer
    wait_until(
        "C to complete from A",
        Duration::from_secs(120),
        &|| logs(&nc),
        || c.has_release("big") == Some(1),
    );
    assert!(
        c.received_from(&a.id) > 0,
        "C fell over to A\n{}",
        logs(&nc)
    );
    assert_eq!(
        hash(&c.curl("/r/big/1/big.img")),
        hash(&data1),
        "C serves the signed bytes"
    );

    // --- C restarts mid-fetch ---
    publish_big(2, &f2);
    wait_until(
        "C to hold a third of v2",
        Duration::from_secs(60),
        &|| logs(&nc),
        || c.held("big").is_some_and(|(h, t)| h * 3 >= t),
    );
    let st = Command::new("kill")
        .args(["-TERM", &nc.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{}", nc.pid())).exists() {
        // A zombie until reaped by the drop below; check its state instead.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", nc.pid())).unwrap_or_default();
        if stat.contains(") Z ") || stat.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C did not stop on SIGTERM\n{}",
            nc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before_restart = nc.log_text();
    drop(std::mem::replace(&mut nc, c.start()));
    let (held, total) = c.held("big").unwrap_or((0, 0));
    assert!(
        held * 4 >= total && total as usize == size,
        "after the restart C still holds what it had verified ({held} of {total} bytes)\n--- before ---\n{before_restart}\n--- after ---\n{}",
        nc.log_text()
    );
    wait_until(
        "C to complete v2",
        Duration::from_secs(120),
        &|| logs(&nc),
        || c.has_release("big") == Some(2),
    );
    let refetched = c.received_from(&a.id);
    assert!(
        refetched <= total - held + 1_048_576,
        "C fetched {refetched} bytes after the restart, but only {} were missing\n{}",
        total - held,
        logs(&nc)
    );
    assert!(
        nc.log_text().contains("resuming big v2"),
        "{}",
        nc.log_text()
    );
    assert_eq!(hash(&c.curl("/r/big/2/big.img")), hash(&data2));
}

/// A chain A → B → C whose B–C hop loses 2 % of the packets each way (the branch behind a
/// poor VPN): C, which peers only with B, still ends up with the release, every byte over the
/// lossy hop and verified. No timing here: `tests/bench/lossy.sh` holds the rates.
#[test]
fn a_release_crosses_a_two_percent_lossy_hop_verified() {
    let _turn = sharing_the_machine();
    let (tmp, key, public, wan, a, b, c) = three_sites();
    let (ab_a, ab_b) = wan.link("a", "b", 10, Some(100));
    let (bc_b, bc_c) = wan.link_lossy("b", "c", 20, Some(100), 2.0);
    let peer = |s: &Site, ip: std::net::Ipv4Addr| format!("{}@{ip}:{FLEET_PORT}", s.id);
    a.configure(&public, &[peer(&b, ab_b)], None);
    b.configure(&public, &[peer(&a, ab_a), peer(&c, bc_c)], None);
    c.configure(&public, &[peer(&b, bc_b)], None);
    let (na, nb, nc) = (a.start(), b.start(), c.start());
    let logs = || logs_of(&[("a", &na), ("b", &nb), ("c", &nc)]);

    let data = publish_big_img(
        tmp.path(),
        &key,
        &a,
        &ab_a.to_string(),
        "lossy",
        15,
        16_000_000,
    );
    wait_until(
        "C to hold the release across the lossy hop",
        Duration::from_secs(300),
        &logs,
        || c.has_release("lossy").is_some(),
    );
    wan.check();
    assert!(
        c.received_from(&b.id) >= data.len() as u64,
        "C got every byte from B, its only peer: {} of {}\n{}",
        c.received_from(&b.id),
        data.len(),
        logs()
    );
    let version = c.has_release("lossy").unwrap();
    assert_eq!(
        blake3::hash(&c.curl(&format!("/r/lossy/{version}/big.img"))),
        blake3::hash(&data),
        "C serves the signed bytes\n{}",
        logs()
    );
}

/// Boot policy over the WAN lab: A publishes two images and a policy giving the QEMU client's
/// MAC image `e2e-a` at site C only and everyone else `e2e-b`; the client boots `e2e-a` at C
/// while B would give it `e2e-b`; a new policy version published at A (the rule now names
/// `e2e-b`) makes the same client boot `e2e-b` at C, without restarting any node. Then the
/// fleet-wide machine list asked at A shows C's QEMU client (site, arch, how far it got), and
/// a one-shot rule (`once = true`) boots `e2e-a` once: C's next answer for the MAC is the
/// local disk and its machine list shows the one-shot done. Last, C is cut off while A
/// publishes a newer policy: C keeps applying the one it holds, and applies the new one once
/// the links heal.
#[test]
fn a_policy_published_at_a_decides_what_a_client_boots_at_c() {
    let _turn = sharing_the_machine();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let image = boot_image();
    let lab = PxeLab::up();
    let wan = Wan::up();
    // A also peers with C (a longer link).
    let (a, b, c, ab_a) = lab_triangle(
        tmp.path(),
        &public,
        &lab,
        &wan,
        40,
        "[node]\nsite = \"site-c\"\n",
    );
    let (na, nb, nc) = (a.start(), b.start(), c.start());
    let logs = || logs_of(&[("a", &na), ("b", &nb), ("c", &nc)]);
    let a_addr = ab_a.to_string();
    publish_ipxe(&key, &a, &a_addr);
    for name in ["e2e-a", "e2e-b"] {
        publish_boot_image(&key, &a, &a_addr, name, &image);
    }
    // B too: its script is checked below. C may hold them first: A, with no inflow of its
    // own, tries B (taking little of small files) against C and may serve C beside it.
    wait_until(
        "B and C to hold ipxe, e2e-a and e2e-b",
        Duration::from_secs(180),
        &logs,
        || {
            ["ipxe", "e2e-a", "e2e-b"]
                .iter()
                .all(|n| b.has_release(n).is_some() && c.has_release(n).is_some())
        },
    );

    let mac = lab.var("LAB_CLIENT_MAC").to_string();
    let publish_policy = |version: u64, x_rule: &str| {
        let source = tmp.path().join(format!("policy-{version}.toml"));
        std::fs::write(
            &source,
            format!(
                "default = {{ image = \"e2e-b\" }}\n\n[[rule]]\nname = \"x-at-c\"\nmachines = [\"{mac}\"]\nsites = [\"site-c\"]\n{x_rule}\n"
            ),
        )
        .unwrap();
        let signed = tmp.path().join(format!("policy-{version}.nbpol"));
        run(
            Command::new(netboot_bin())
                .args(["policy", "sign", "--key"])
                .arg(&key)
                .arg(&source)
                .args(["--version", &version.to_string(), "--out"])
                .arg(&signed),
            true,
        );
        run(
            Command::new("ip")
                .args(["netns", "exec", &a.ns])
                .arg(netboot_bin())
                .args(["policy", "publish", "--to"])
                .arg(format!("{}@{a_addr}:{FLEET_PORT}", a.id))
                .arg(&signed),
            true,
        );
    };
    let policy_at = |site: &Site| {
        let status: serde_json::Value =
            serde_json::from_slice(&site.curl("/status.json")).unwrap_or_default();
        status["policy"]["version"].as_u64()
    };
    let wait_policy = |site: &Site, name: &str, version: u64, limit: u64| {
        wait_until(
            &format!("{name} to hold policy v{version}"),
            Duration::from_secs(limit),
            &logs,
            || policy_at(site) == Some(version),
        );
    };
    // What a BIOS iPXE client with the lab's MAC would get from a site's node.
    let script_at = |site: &Site| {
        String::from_utf8_lossy(
            &site.curl(&format!("/boot.ipxe?mac={mac}&platform=pcbios&arch=i386")),
        )
        .into_owned()
    };
    let boot = |want: &str, policy: u64| {
        let (code, qemu, serial) = lab.boot_bios();
        let c_log = nc.log_text();
        assert!(
            code == 0 && serial.contains("NETBOOT-E2E: PASS"),
            "boot at C failed (exit {code}): {qemu}\n--- serial ---\n{serial}\n{}",
            logs()
        );
        assert!(
            c_log
                .lines()
                .any(|l| l.contains(&format!("client {mac} boots {want} v"))
                    && l.contains(&format!("(policy v{policy} rule 1 \"x-at-c\")"))),
            "C's log names the image and the policy's rule:\n{c_log}"
        );
        assert!(
            c_log.contains(&format!("GET /r/{want}/")) && c_log.contains("/check.bin: 200"),
            "the client fetched {want}'s check.bin from C:\n{c_log}"
        );
    };

    publish_policy(1, "image = \"e2e-a\"");
    wait_policy(&c, "C", 1, 60);
    assert!(
        script_at(&b).contains("booting e2e-b v"),
        "B (no site label) gives the MAC the default:\n{}",
        script_at(&b)
    );
    boot("e2e-a", 1);
    let pid = nc.pid();
    publish_policy(2, "image = \"e2e-b\"");
    wait_policy(&c, "C", 2, 60);
    boot("e2e-b", 2);
    assert_eq!(nc.pid(), pid, "no node restarted");

    // The fleet-wide machine list, asked at A, shows C's QEMU client.
    let fleet_clients_at_a = || -> serde_json::Value {
        let out = run(
            Command::new("ip")
                .args(["netns", "exec", &a.ns])
                .arg(netboot_bin())
                .args(["clients", "--fleet", "--json", "--config"])
                .arg(a.config()),
            true,
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
    };
    let view = fleet_clients_at_a();
    let client = view["machines"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["mac"] == mac.as_str()))
        .unwrap_or_else(|| panic!("A's fleet-wide list has no {mac}: {view}\n{}", logs()));
    assert_eq!(client["site"], "site-c", "{client}");
    assert_eq!(client["node"], c.id[..10].to_string(), "{client}");
    assert!(
        client["arch"].as_str().is_some_and(|a| !a.is_empty()),
        "the client's architecture is known: {client}"
    );
    assert_eq!(client["image"]["name"], "e2e-b", "{client}");
    assert_eq!(client["outcome"], "initrd", "{client}");

    // A one-shot: the image once, then the local disk.
    publish_policy(3, "image = \"e2e-a\"\nonce = true");
    wait_policy(&c, "C", 3, 60);
    boot("e2e-a", 3);
    let clients: serde_json::Value = serde_json::from_slice(&c.curl("/clients.json")).unwrap();
    let script = script_at(&c);
    assert!(
        script.contains("booting from local disk") && script.contains("exit 1"),
        "after its one-shot boot the MAC gets the local disk at C:\n{script}\n{clients}\n{}",
        logs()
    );
    let once = clients["machines"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["mac"] == mac.as_str()))
        .map(|m| m["once"].clone())
        .unwrap_or_default();
    assert_eq!(once["state"], "done", "C's machine list: {clients}");
    assert_eq!(once["policy_version"], 3, "{once}");
    assert_eq!(once["by"], "fetched", "{once}");

    // C cut off from A and B: a newer policy reaches B, C keeps applying the one it holds
    // (its one-shot done: local disk); healed, C catches up and the MAC boots e2e-b again.
    wan.cut("a", "c", Cut::Down);
    wan.cut("b", "c", Cut::Drop);
    publish_policy(4, "image = \"e2e-b\"");
    wait_policy(&b, "B", 4, 60);
    assert_eq!(policy_at(&c), Some(3), "C is cut off\n{}", logs());
    assert!(
        script_at(&c).contains("booting from local disk"),
        "partitioned C keeps applying v3:\n{}",
        script_at(&c)
    );
    wan.heal("a", "c");
    wan.heal("b", "c");
    wait_policy(&c, "C (healed)", 4, 120);
    let script = script_at(&c);
    assert!(
        script.contains("booting e2e-b v"),
        "healed C applies v4:\n{script}"
    );
    assert_eq!(nc.pid(), pid, "no node restarted");
}

/// A slow middle site does not hold back the sites behind it (issue 14). Five sites: A
/// publishes; B, A's only peer, fetches from A over 25 Mbit/s; M, 10 ms from B but on 5 Mbit/s
/// links, takes B's only upload slot and follows B's copy. C and D come up once M holds some of
/// it. C is 10 ms from M and 40 ms from B; D is 10 ms from M and 20 ms from C. Both find M the
/// nearest source, as a chain forms; M has one upload slot, so one of them follows M and the
/// other turns to its next source. One following M takes far less than B receives, so B lets
/// one more peer in, and C (or D) sees B's (or C's) copy grow far faster than M's and leaves M
/// for it. Both end with most of the release from a site other than M, and B, C and D commit
/// it verified. Without those two rules the site behind M follows it to the end and gets every
/// byte from M, at M's rate, and so does the site following that one. (The time ratio, throttled
/// against not, is measured by `tests/bench/throttled.sh`, not asserted here.)
#[test]
fn a_throttled_middle_site_does_not_hold_back_the_sites_behind_it() {
    let _turn = alone_on_the_machine();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let wan = Wan::up();
    let site = |name: &'static str| Site::new(tmp.path(), name, wan.site(name));
    let (a, b, m, c, d) = (site("a"), site("b"), site("m"), site("c"), site("d"));
    let (ab_a, ab_b) = wan.link("a", "b", 10, Some(25));
    let (bm_b, bm_m) = wan.link("b", "m", 10, Some(5));
    let (mc_m, mc_c) = wan.link("m", "c", 10, Some(5));
    let (bc_b, bc_c) = wan.link("b", "c", 40, Some(25));
    let (md_m, md_d) = wan.link("m", "d", 10, Some(5));
    let (cd_c, cd_d) = wan.link("c", "d", 20, Some(25));
    let peer = |s: &Site, ip: std::net::Ipv4Addr| format!("{}@{ip}:{FLEET_PORT}", s.id);
    a.configure(&public, &[peer(&b, ab_b)], None);
    b.configure(
        &public,
        &[peer(&a, ab_a), peer(&m, bm_m), peer(&c, bc_c)],
        None,
    );
    m.configure(
        &public,
        &[peer(&b, bm_b), peer(&c, mc_c), peer(&d, md_d)],
        None,
    );
    c.configure(
        &public,
        &[peer(&m, mc_m), peer(&b, bc_b), peer(&d, cd_d)],
        None,
    );
    d.configure(&public, &[peer(&m, md_m), peer(&c, cd_c)], None);
    let (na, nb, nm) = (a.start(), b.start(), m.start());
    let early = || logs_of(&[("a", &na), ("b", &nb), ("m", &nm)]);
    wait_until(
        "A, B and M to reach each other",
        Duration::from_secs(60),
        &early,
        || {
            [(&a, 1), (&b, 2), (&m, 1)]
                .iter()
                .all(|(s, n)| s.status().connected_peers() == *n)
        },
    );

    // 40 MB: B needs ~13 s for it, M alone ~65 s.
    let data = publish_big_img(
        tmp.path(),
        &key,
        &a,
        &ab_a.to_string(),
        "slowmid",
        14,
        40_000_000,
    );
    // M holds B's slot and has part of the file: C and D, started now, find M the nearest source.
    wait_until("M to hold 1 MB", Duration::from_secs(120), &early, || {
        m.held("slowmid").is_some_and(|(held, _)| held >= 1_000_000)
    });
    let (nc, nd) = (c.start(), d.start());
    let logs = || logs_of(&[("a", &na), ("b", &nb), ("m", &nm), ("c", &nc), ("d", &nd)]);
    // M itself needs a minute at its rate; what matters is C and D, not held back to it.
    wait_until(
        "B, C and D to commit the release",
        Duration::from_secs(400),
        &logs,
        || {
            [&b, &c, &d]
                .iter()
                .all(|s| s.has_release("slowmid").is_some())
        },
    );
    wan.check();
    let others = [("B", &b), ("C", &c), ("D", &d)];
    let nodes = [("a", &na), ("b", &nb), ("m", &nm), ("c", &nc), ("d", &nd)];
    mostly_not_from_m(&m, &[("C", &c), ("D", &d)], &others, data.len(), &nodes);
    serve_signed_bytes(&[&b, &c, &d], "slowmid", &data, &logs);
}

/// Each of `behind` got most of the release (`size` bytes) from `others` (not itself), less
/// than half from the slow `m`. A failure prints every node's log, the failing site's first.
fn mostly_not_from_m(
    m: &Site,
    behind: &[(&str, &Site)],
    others: &[(&str, &Site)],
    size: usize,
    nodes: &[(&str, &NodeProcess)],
) {
    let names: Vec<&str> = others.iter().map(|(n, _)| *n).collect();
    let names = names.join(", ");
    for (name, s) in behind {
        let from_m = s.received_from(&m.id);
        let from_others: u64 = others
            .iter()
            .filter(|(_, o)| o.id != s.id)
            .map(|(_, o)| s.received_from(&o.id))
            .sum();
        eprintln!("{name}: {from_others} bytes from {names}, {from_m} from M");
        assert!(
            from_others > size as u64 / 2 && from_m < size as u64 / 2,
            "{name} got most of the release from a site other than the slow M: {from_others} bytes from {names}, {from_m} from M\n{}",
            logs_of_first(name, nodes)
        );
    }
}

/// Each of `sites` serves `name`'s `big.img` with the signed bytes.
fn serve_signed_bytes(sites: &[&Site], name: &str, data: &[u8], logs: &dyn Fn() -> String) {
    for s in sites {
        let version = s.has_release(name).unwrap();
        assert_eq!(
            blake3::hash(&s.curl(&format!("/r/{name}/{version}/big.img"))),
            blake3::hash(data),
            "{} serves the signed bytes\n{}",
            s.dir.display(),
            logs()
        );
    }
}

/// A slow site fed straight from the origin does not hold back the others (issue 14). Four
/// sites: A publishes; M, A's nearest peer but on 5 Mbit/s links, takes A's only upload slot
/// first. C (40 ms from A over 25 Mbit/s, 10 ms from M) and D (10 ms from M, 20 ms from C, not
/// a peer of A) come up once M holds some of the release, and both find M the nearest source.
/// A serves a complete copy and receives nothing: it has no rate of its own to call M slow
/// by, the measure a node still fetching has (the test above). So when C, following M (or D,
/// which follows M), tries A's complete copy, A lets C in beside M for a trial (gate.rs): C
/// takes far more than M's 5 Mbit/s, C leaves the peer it followed for A and stays on it, M
/// keeps its slot as a lent one, and D leaves M for C, whose copy now grows much faster.
/// Without the trial, A refuses every other peer while M holds its slot, and C and D follow M
/// to the end, at M's rate: D got all 40 MB from M. (The time ratio is not asserted here.)
#[test]
fn a_slow_site_fed_by_the_origin_does_not_hold_back_the_others() {
    let _turn = alone_on_the_machine();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let wan = Wan::up();
    let site = |name: &'static str| Site::new(tmp.path(), name, wan.site(name));
    let (a, m, c, d) = (site("a"), site("m"), site("c"), site("d"));
    let (am_a, am_m) = wan.link("a", "m", 20, Some(5));
    let (ac_a, ac_c) = wan.link("a", "c", 40, Some(25));
    let (mc_m, mc_c) = wan.link("m", "c", 10, Some(5));
    let (md_m, md_d) = wan.link("m", "d", 10, Some(5));
    let (cd_c, cd_d) = wan.link("c", "d", 20, Some(25));
    let peer = |s: &Site, ip: std::net::Ipv4Addr| format!("{}@{ip}:{FLEET_PORT}", s.id);
    a.configure(&public, &[peer(&m, am_m), peer(&c, ac_c)], None);
    m.configure(
        &public,
        &[peer(&a, am_a), peer(&c, mc_c), peer(&d, md_d)],
        None,
    );
    c.configure(
        &public,
        &[peer(&a, ac_a), peer(&m, mc_m), peer(&d, cd_d)],
        None,
    );
    d.configure(&public, &[peer(&m, md_m), peer(&c, cd_c)], None);
    let (na, nm) = (a.start(), m.start());
    let early = || logs_of(&[("a", &na), ("m", &nm)]);
    wait_until(
        "A and M to reach each other",
        Duration::from_secs(60),
        &early,
        || [&a, &m].iter().all(|s| s.status().connected_peers() == 1),
    );

    // 40 MB: M alone needs ~65 s for it, C from A ~13 s.
    let data = publish_big_img(
        tmp.path(),
        &key,
        &a,
        &am_a.to_string(),
        "slowfed",
        15,
        40_000_000,
    );
    wait_until("M to hold 1 MB", Duration::from_secs(120), &early, || {
        m.held("slowfed").is_some_and(|(held, _)| held >= 1_000_000)
    });
    let (nc, nd) = (c.start(), d.start());
    let logs = || logs_of(&[("a", &na), ("m", &nm), ("c", &nc), ("d", &nd)]);
    wait_until(
        "C and D to commit the release",
        Duration::from_secs(400),
        &logs,
        || [&c, &d].iter().all(|s| s.has_release("slowfed").is_some()),
    );
    wan.check();
    let others = [("A", &a), ("C", &c), ("D", &d)];
    let nodes = [("a", &na), ("m", &nm), ("c", &nc), ("d", &nd)];
    mostly_not_from_m(&m, &[("C", &c), ("D", &d)], &others, data.len(), &nodes);
    serve_signed_bytes(&[&c, &d], "slowfed", &data, &logs);
}
