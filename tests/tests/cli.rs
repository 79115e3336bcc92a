//! The `netboot` command as a sysadmin uses it: keygen, publish, images, verify, bundles,
//! configs, boot policies, and what happens on bad input or a crash.

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::Path,
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use netboot_tests::{content, keygen, netboot, run, stderr, stdout};

struct Site {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    key: std::path::PathBuf,
    public: String,
}

impl Site {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (key, public) = keygen(&dir, "publisher.key");
        Self {
            _tmp: tmp,
            dir,
            key,
            public,
        }
    }

    fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.dir.join(name);
        fs::write(&p, data).unwrap();
        p.display().to_string()
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn store_args<'a>(
        &'a self,
        cmd: &'a mut std::process::Command,
    ) -> &'a mut std::process::Command {
        cmd.args(["--data-dir", &self.data(), "--trust", &self.public])
    }

    fn images(&self) -> serde_json::Value {
        let out = run(self.store_args(netboot().args(["images", "--json"])), true);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn verify(&self) -> std::process::Output {
        self.store_args(netboot().arg("verify")).output().unwrap()
    }
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_the_public_key() {
    let site = Site::new();
    assert!(
        site.public.starts_with("ed25519:") && site.public.len() == 72,
        "{}",
        site.public
    );
    let mode = fs::metadata(&site.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = run(netboot().arg("pubkey").arg("--key").arg(&site.key), true);
    assert_eq!(stdout(&out).trim(), site.public);
    let before = fs::read(&site.key).unwrap();
    let out = run(netboot().arg("keygen").arg("--out").arg(&site.key), false);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read(&site.key).unwrap(), before);
}

#[test]
fn publish_images_verify_round_trip_and_damage_is_reported() {
    let site = Site::new();
    let kernel = site.file("vmlinuz", &content(1, 2_000_000));
    let initrd = site.file("initrd.img", &content(2, 300_000));
    let squash = site.file("root.sfs", &content(3, 1_000_000));
    let out = run(
        site.store_args(netboot().args(["publish", "--key"]).arg(&site.key))
            .args([
                "--name",
                "debian-12",
                "--kernel",
                &kernel,
                "--initrd",
                &initrd,
                "--file",
                &format!("live/root.sfs={squash}"),
                "--cmdline",
                "console=ttyS0 fetch={{image_url}}/live/root.sfs",
            ]),
        true,
    );
    assert!(
        stdout(&out).contains("published debian-12 v1"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("vmlinuz: done, blake3 "),
        "progress is shown: {}",
        stderr(&out)
    );

    let images = site.images();
    let image = &images["images"][0];
    assert_eq!(image["name"], "debian-12");
    assert_eq!(image["version"], 1);
    assert_eq!(image["publisher"], site.public.as_str());
    let paths: Vec<&str> = image["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["initrd.img", "live/root.sfs", "vmlinuz"]);
    let root_hash = blake3::hash(&content(3, 1_000_000)).to_hex().to_string();
    assert!(image["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["blake3"] == root_hash.as_str()));

    let out = site.verify();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("all intact"));

    // Damage behind the store's back: verify names image, version and file, and fails.
    let blob = site
        .dir
        .join("data/blobs/data")
        .join(format!("{root_hash}.data"));
    let mut bytes = fs::read(&blob).unwrap();
    bytes[999_999] ^= 0x80;
    fs::write(&blob, bytes).unwrap();
    let out = site.verify();
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("DAMAGED debian-12 v1: `live/root.sfs`"),
        "{text}"
    );
}

#[test]
fn bad_input_is_named_and_leaves_the_store_unchanged() {
    let site = Site::new();
    let kernel = site.file("vmlinuz", &content(1, 10_000));
    let publish = |extra: &[&str], key: &Path| {
        let mut cmd = netboot();
        site.store_args(cmd.args(["publish", "--key"]).arg(key))
            .args(["--name", "deb", "--kernel", &kernel])
            .args(extra);
        run(&mut cmd, false)
    };
    let missing = site.dir.join("nope.img").display().to_string();
    let out = publish(&["--initrd", &missing], &site.key);
    assert!(
        stderr(&out).contains("nope.img") && stderr(&out).contains("No such file"),
        "{}",
        stderr(&out)
    );

    let out = publish(&["--cmdline", "root={{rootfs}}"], &site.key);
    assert!(
        stderr(&out).contains("unknown placeholder `{{rootfs}}`"),
        "{}",
        stderr(&out)
    );

    let (other, other_public) = keygen(&site.dir, "other.key");
    let out = publish(&[], &other);
    assert!(
        stderr(&out).contains(&other_public) && stderr(&out).contains("not a trusted publisher"),
        "{}",
        stderr(&out)
    );

    let out = publish(&[], &site.dir.join("missing.key"));
    assert!(stderr(&out).contains("missing.key"), "{}", stderr(&out));

    assert_eq!(site.images()["images"].as_array().unwrap().len(), 0);

    // A version must go up.
    run(
        site.store_args(netboot().args(["publish", "--key"]).arg(&site.key))
            .args(["--name", "deb", "--kernel", &kernel, "--version", "5"]),
        true,
    );
    let out = publish(&["--version", "5"], &site.key);
    assert!(
        stderr(&out).contains("not newer than v5"),
        "{}",
        stderr(&out)
    );
    let out = publish(&["--version", "4"], &site.key);
    assert!(
        stderr(&out).contains("not newer than v5"),
        "{}",
        stderr(&out)
    );
    let versions: Vec<u64> = site.images()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [5]);
}

#[test]
fn a_config_file_sets_data_dir_trust_and_retention() {
    let site = Site::new();
    let config = site.dir.join("netboot.toml");
    fs::write(
        &config,
        format!(
            "data_dir = \"state\"\ntrusted_publishers = [\"{}\"]\n\n[store]\nkeep_versions = 1\n",
            site.public
        ),
    )
    .unwrap();
    for seed in 1..=2 {
        let kernel = site.file("vmlinuz", &content(seed, 50_000));
        run(
            netboot()
                .args(["publish", "--config"])
                .arg(&config)
                .args(["--key"])
                .arg(&site.key)
                .args(["--name", "deb", "--kernel", &kernel]),
            true,
        );
    }
    let out = run(
        netboot()
            .args(["images", "--json", "--config"])
            .arg(&config),
        true,
    );
    let images: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions: Vec<u64> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2], "keep_versions = 1 keeps only the newest");
    assert!(
        site.dir.join("state/releases/deb").exists(),
        "data_dir is relative to the config file"
    );

    fs::write(&config, "data_dir = \"state\"\n[store]\nkeep_versons = 1\n").unwrap();
    let out = run(netboot().args(["images", "--config"]).arg(&config), false);
    let err = stderr(&out);
    assert!(
        err.contains("netboot.toml:3: store.keep_versons: "),
        "{err}"
    );
}

#[test]
fn bundles_carry_a_release_between_stores_and_tampering_is_refused() {
    let site = Site::new();
    let kernel = site.file("vmlinuz", &content(1, 400_000));
    let initrd = site.file("initrd.img", &content(2, 40_000));
    let bundle = site.dir.join("bundle");
    run(
        netboot()
            .args(["publish", "--key"])
            .arg(&site.key)
            .args([
                "--name",
                "deb",
                "--kernel",
                &kernel,
                "--initrd",
                &initrd,
                "--version",
                "7",
                "--out",
            ])
            .arg(&bundle),
        true,
    );
    run(site.store_args(netboot().arg("import").arg(&bundle)), true);
    assert_eq!(site.images()["images"][0]["version"], 7);

    // Export from this store, import elsewhere: the same release id arrives.
    let exported = site.dir.join("exported");
    run(
        site.store_args(netboot().args(["export", "deb", "--out"]).arg(&exported)),
        true,
    );
    let other = site.dir.join("other-data").display().to_string();
    run(
        netboot()
            .args(["import", "--data-dir", &other, "--trust", &site.public])
            .arg(&exported),
        true,
    );
    let out = run(
        netboot().args([
            "images",
            "--json",
            "--data-dir",
            &other,
            "--trust",
            &site.public,
        ]),
        true,
    );
    let there: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(there["images"][0]["id"], site.images()["images"][0]["id"]);

    // One flipped bit in a file of a bundle: refused, named, nothing visible.
    let tampered = site.dir.join("tampered").display().to_string();
    let mut bytes = fs::read(bundle.join("files/vmlinuz")).unwrap();
    bytes[200_000] ^= 1;
    fs::write(bundle.join("files/vmlinuz"), bytes).unwrap();
    let out = run(
        netboot()
            .args(["import", "--data-dir", &tampered, "--trust", &site.public])
            .arg(&bundle),
        false,
    );
    assert!(
        stderr(&out).contains("`vmlinuz`")
            && stderr(&out).contains("does not match the signed release"),
        "{}",
        stderr(&out)
    );
    let out = run(
        netboot().args([
            "images",
            "--json",
            "--data-dir",
            &tampered,
            "--trust",
            &site.public,
        ]),
        true,
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["images"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// Starts a publish of a big file and returns once its progress shows it is copying.
fn start_big_publish(
    site: &Site,
    big: &str,
    name: &str,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = site
        .store_args(netboot().args(["publish", "--key"]).arg(&site.key))
        .args(["--name", name, "--kernel", big])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn a_second_process_on_the_same_data_dir_is_refused_with_the_holder_named() {
    let site = Site::new();
    let big = site.file("big.img", &content(9, 96 << 20));
    let (mut child, rx) = start_big_publish(&site, &big, "big");
    assert!(
        wait_for_line(&rx, "copying"),
        "publish never started copying"
    );
    let out = run(site.store_args(netboot().arg("images")), false);
    let err = stderr(&out);
    assert!(
        err.contains("in use by another netboot process")
            && err.contains(&format!("pid {}", child.id())),
        "{err}"
    );
    assert!(child.wait().unwrap().success());
    assert_eq!(site.images()["images"][0]["name"], "big");
}

#[test]
fn kill_9_during_publish_leaves_the_release_wholly_there_or_wholly_absent() {
    let site = Site::new();
    let big = site.file("big.img", &content(11, 64 << 20));
    let big_hash = blake3::hash(&content(11, 64 << 20)).to_hex().to_string();
    // Kill at several moments: while copying, while hashing, right at "signed … committing"
    // (the window around the commit point), and just after.
    let moments: [(&str, u64); 5] = [
        ("copying", 0),
        ("copying", 150),
        ("done, blake3", 0),
        ("committing", 0),
        ("committing", 30),
    ];
    let mut seen_present = 0;
    for (i, (marker, delay_ms)) in moments.iter().enumerate() {
        let name = format!("crash{i}");
        let (mut child, rx) = start_big_publish(&site, &big, &name);
        let reached = wait_for_line(&rx, marker);
        std::thread::sleep(Duration::from_millis(*delay_ms));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        eprintln!("kill at {marker}+{delay_ms}ms: publish ended with {status}");
        if !reached {
            assert!(
                status.success(),
                "publish {name} failed before reaching {marker}"
            );
        }
        // After the crash: the store opens, and the release is either complete or absent.
        let images = site.images();
        assert!(
            images["not_servable"].as_array().unwrap().is_empty(),
            "{images}"
        );
        let listed: Vec<&serde_json::Value> = images["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["name"] == name.as_str())
            .collect();
        match listed.as_slice() {
            [] => {}
            [image] => {
                seen_present += 1;
                assert_eq!(image["files"][0]["blake3"], big_hash.as_str());
            }
            more => panic!("{name} listed {} times", more.len()),
        }
        let out = site.verify();
        assert!(
            out.status.success(),
            "store inconsistent after kill at {marker}+{delay_ms}ms: {}",
            stdout(&out)
        );
        // No leftovers of the interrupted write are visible as releases, and publishing the
        // same name works: a crashed publish never takes a version number.
        run(
            site.store_args(netboot().args(["publish", "--key"]).arg(&site.key))
                .args(["--name", &name, "--kernel", &big]),
            true,
        );
        let images = site.images();
        let versions: Vec<u64> = images["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["name"] == name.as_str())
            .map(|i| i["version"].as_u64().unwrap())
            .collect();
        assert_eq!(versions.len(), listed.len() + 1, "{name}: {versions:?}");
    }
    eprintln!(
        "release present after {seen_present} of {} kills",
        moments.len()
    );
    let leftovers: Vec<_> = walk(&site.dir.join("data/releases"))
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// A small tmpfs mounted on a directory of the test's own temp dir; unmounted on drop, also
/// when the test fails. Needs root (CI runs as root); without it the test fails saying so.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "netboot-test"])
            .arg(dir)
            .output()
            .expect("run mount (util-linux)");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: mount said {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_path_buf())
    }

    fn free_bytes(&self) -> u64 {
        let out = run(
            std::process::Command::new("stat")
                .args(["-f", "-c", "%a %S"])
                .arg(&self.0),
            true,
        );
        let text = stdout(&out);
        let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        it.next().unwrap() * it.next().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn temp_files(data: &Path) -> Vec<String> {
    fs::read_dir(data.join("blobs/temp"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_publish_that_fills_the_disk_leaves_no_partial_file_and_start_up_removes_old_ones() {
    let site = netboot_tests::LoopbackSite::new("");
    let data = site.dir().join("data");
    let disk = Tmpfs::mount(&data, "4m");
    let small = site.file("small.img", &content(1, 200_000));
    site.publish(&["--name", "small", "--file", &small]);
    let free = disk.free_bytes();
    let big = site.file("big.img", &content(2, 6 << 20));
    for attempt in 0..2 {
        let out = run(
            netboot()
                .args(["publish", "--config"])
                .arg(&site.config)
                .arg("--key")
                .arg(&site.key)
                .args(["--name", "big", "--file", &big]),
            false,
        );
        let err = stderr(&out);
        assert!(err.to_lowercase().contains("no space"), "{err}");
        assert_eq!(temp_files(&data), Vec::<String>::new(), "attempt {attempt}");
        let now = disk.free_bytes();
        assert!(
            now + (256 << 10) >= free,
            "attempt {attempt}: {free} bytes free before, {now} after"
        );
    }

    // A copy cut short by a crash (kill, power cut) is removed when the store is next
    // opened: by `verify`, which says so, and by `netboot node`.
    fs::write(data.join("blobs/temp/0123abcd.temp"), content(3, 1 << 20)).unwrap();
    let out = run(
        netboot().args(["verify", "--config"]).arg(&site.config),
        true,
    );
    let text = stdout(&out);
    assert!(text.contains("REMOVED 1 partial file"), "{text}");
    assert!(text.contains("all intact"), "{text}");
    assert_eq!(temp_files(&data), Vec::<String>::new());
    fs::write(data.join("blobs/temp/4567cdef.temp"), content(4, 1 << 20)).unwrap();
    let node = site.start();
    assert!(
        node.log_text().contains("removed 1 partial file"),
        "{}",
        node.log_text()
    );
    assert_eq!(temp_files(&data), Vec::<String>::new());
    assert!(disk.free_bytes() + (256 << 10) >= free);
    drop(node);
    drop(disk);
}

#[test]
fn sighup_with_an_unchanged_config_changes_nothing_and_the_node_keeps_serving() {
    let site = netboot_tests::LoopbackSite::new("");
    let mut node = site.start();
    let pid = node.pid().to_string();
    // One SIGHUP after the other is handled: two sent back to back may arrive as one (a
    // pending signal is not queued twice), which is the kernel's, not the node's, doing.
    for n in 1..=2 {
        run(
            std::process::Command::new("kill").args(["-HUP", &pid]),
            true,
        );
        netboot_tests::wait_until(
            &format!("the node to log reload {n}"),
            Duration::from_secs(10),
            &|| node.log_text(),
            || node.log_text().matches("has no changes").count() == n,
        );
    }
    // Still serving.
    let out = run(
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{}/boot.ipxe", site.base_url())),
        true,
    );
    assert_eq!(stdout(&out), "200");
    assert!(node.is_running(), "{}", node.log_text());
}

#[test]
fn a_second_node_on_the_same_dhcp_interface_refuses_to_start_naming_the_first() {
    let ns = netboot_tests::Netns::new("nb-dhcp2");
    let tmp = tempfile::tempdir().unwrap();
    let config = |n: u16| {
        let path = tmp.path().join(format!("node{n}.toml"));
        fs::write(
            &path,
            format!(
                "data_dir = \"data{n}\"\n[dhcp]\nmode = \"proxy\"\ninterface = \"lo\"\nserver_ip = \"127.0.0.1\"\n\
                 [tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:{}\"\n",
                8080 + n
            ),
        )
        .unwrap();
        path
    };
    let first = netboot_tests::NodeProcess::start(&config(1), Some(&ns.0));
    let out = netboot_tests::run_bounded(
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .arg(netboot_tests::netboot_bin())
            .arg("node")
            .arg("--config")
            .arg(config(2)),
        Duration::from_secs(30),
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("another process already serves DHCP on 0.0.0.0:67, interface lo")
            && err.contains(&format!("pid {} (netboot)", first.pid())),
        "{err}"
    );
    drop(first);
}

/// `netboot quick` that cannot start says why, exits 1 and leaves nothing in its TMPDIR: in a
/// namespace without a default route (it fails before creating anything), and with a kernel
/// file that does not exist (it fails after its temporary directory and the first-stage
/// release were made). Needs Debian's `ipxe` (tests/install-deps.sh) for the second case.
#[test]
fn netboot_quick_that_cannot_start_says_why_and_leaves_nothing_behind() {
    let ns = netboot_tests::Netns::new("nb-quick");
    let tmp = tempfile::tempdir().unwrap();
    let quick = |args: &[&str]| {
        let out = netboot_tests::run_bounded(
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns.0])
                .arg(netboot_tests::netboot_bin())
                .arg("quick")
                .args(args)
                .env("TMPDIR", tmp.path())
                .env_remove("RUST_LOG"),
            Duration::from_secs(60),
        );
        let left: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}\n{}", stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        stderr(&out)
    };
    let missing = tmp.path().join("no-such-vmlinuz");
    let missing = missing.to_str().unwrap();

    let err = quick(&["--kernel", missing]);
    assert!(
        err.contains("no IPv4 default route") && err.contains("--interface"),
        "{err}"
    );

    let err = quick(&[
        "--interface",
        "lo",
        "--http-port",
        "8080",
        "--kernel",
        missing,
    ]);
    assert!(
        err.contains("published the first-stage programs as ipxe v1"),
        "it got as far as publishing: {err}"
    );
    assert!(
        err.contains("cannot publish the image") && err.contains(missing),
        "{err}"
    );
    assert!(err.contains("removed "), "{err}");
}

const POLICY_TOML: &str = r#"# kiosks boot the kiosk image at branch-1; the lab gets the menu; the rest boot from disk
default = { local = true }

[groups]
kiosks = ["52:54:00:00:00:01", "52:54:00:00:00:02"]

[defaults]
lab = { menu = true }

[[rule]]
name = "reinstall"
machines = ["52:54:00:aa:00:01"]
image = "debian-12"
once = true

[[rule]]
name = "kiosks-branch-1"
groups = ["kiosks"]
sites = ["branch-1"]
archs = ["efi_x64"]
image = "kiosk"
version = 7
"#;

#[test]
fn policy_sign_and_explain() {
    let site = Site::new();
    let source = site.file("policy.toml", POLICY_TOML.as_bytes());
    let signed = site.dir.join("policy.nbpol");
    let out = run(
        netboot()
            .args(["policy", "sign", "--key"])
            .arg(&site.key)
            .args(["--version", "5", &source, "--out"])
            .arg(&signed),
        true,
    );
    assert!(
        stdout(&out).contains("signed boot policy v5"),
        "{}",
        stdout(&out)
    );
    let explain = |mac: &str, site_label: &str, extra: &[&str]| {
        let mut cmd = netboot();
        cmd.args(["policy", "explain", "--policy"])
            .arg(&signed)
            .args(["--mac", mac, "--site", site_label])
            .args(extra);
        cmd
    };

    // A kiosk at its site, on its architecture: the site rule, after the reinstall rule.
    let trust = ["--trust", site.public.as_str(), "--arch", "efi_x64"];
    let text = stdout(&run(
        &mut explain("52:54:00:00:00:02", "branch-1", &trust),
        true,
    ));
    assert!(text.contains("boot policy v5"), "{text}");
    assert!(text.contains("admission: would be admitted"), "{text}");
    assert!(
        text.contains(
            "rule 1 \"reinstall\": skipped: the MAC is neither listed nor in a listed group"
        ),
        "{text}"
    );
    assert!(
        text.contains("rule 2 \"kiosks-branch-1\": MATCH (MAC 52:54:00:00:00:02 is in group kiosks; site branch-1 is listed; arch efi_x64 is listed) -> image kiosk v7 (pinned)"),
        "{text}"
    );

    // The same kiosk at another site falls through both rules to that site's default.
    let text = stdout(&run(&mut explain("52:54:00:00:00:02", "lab", &[]), true));
    assert!(
        text.contains("rule 2 \"kiosks-branch-1\": skipped: the site is not listed"),
        "{text}"
    );
    assert!(
        text.contains("no rule matched: default for site lab -> the boot menu"),
        "{text}"
    );
    assert!(
        !text.contains("admission"),
        "no trust given, no verdict: {text}"
    );

    // An untrusted publisher: still explained, but refused, exit status 1.
    let other = "ed25519:".to_string() + &"11".repeat(32);
    let out = run(
        &mut explain("52:54:00:00:00:09", "branch-9", &["--trust", &other]),
        false,
    );
    let text = stdout(&out);
    assert!(
        text.contains("admission: would be REFUSED: boot policy v5: publisher"),
        "{text}"
    );
    assert!(text.contains("fleet-wide default -> local disk"), "{text}");

    // A node config's trusted_publishers decide admission too.
    let config = site.file(
        "node.toml",
        format!(
            "data_dir = \"data\"\ntrusted_publishers = [\"{}\"]\n",
            site.public
        )
        .as_bytes(),
    );
    let text = stdout(&run(
        &mut explain("52:54:00:00:00:09", "branch-9", &["--config", &config]),
        true,
    ));
    assert!(text.contains("admission: would be admitted"), "{text}");

    // A damaged policy file is refused, naming the file.
    let mut bytes = fs::read(&signed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let damaged = site.file("damaged.nbpol", &bytes);
    let out = run(
        netboot().args([
            "policy",
            "explain",
            "--policy",
            &damaged,
            "--mac",
            "52:54:00:00:00:01",
            "--site",
            "x",
        ]),
        false,
    );
    assert!(
        stderr(&out).contains("damaged.nbpol: signature does not verify"),
        "{}",
        stderr(&out)
    );

    // A mistake in the source names the file, line and rule; nothing is written.
    let bad = site.file(
        "bad.toml",
        b"\n[[rule]]\nname = \"x\"\narchs = [\"amd64\"]\nlocal = true\n",
    );
    let out_path = site.dir.join("bad.nbpol");
    let out = run(
        netboot()
            .args(["policy", "sign", "--key"])
            .arg(&site.key)
            .args([&bad, "--out"])
            .arg(&out_path),
        false,
    );
    let err = stderr(&out);
    assert!(
        err.contains("bad.toml: line 2: [[rule]] 1 \"x\": archs: \"amd64\" is not an architecture"),
        "{err}"
    );
    assert!(!out_path.exists());
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_like_other_unix_tools() {
    // `netboot images | head -0`: the reader is gone before the first line. The read end is
    // closed before the child starts, so its first write always meets a closed pipe.
    let site = Site::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = site
        .store_args(netboot().args(["images", "--json"]))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "netboot panicked: {err}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(13),
        "expected the end by SIGPIPE that `cat` or `ls` get, got {:?}; stderr: {err}",
        out.status
    );
}

/// `policy install` puts a signed policy into a stopped node's data dir, checked like one from
/// a peer: the same policy again and an older one are refused with the reason. `export`
/// carries the held policy in the bundle, `import` installs it.
#[test]
fn policy_install_into_a_stopped_node() {
    let site = Site::new();
    site.images(); // opens (formats) the data dir
    let source = site.file("policy.toml", POLICY_TOML.as_bytes());
    let sign = |version: &str| {
        let out = site.dir.join(format!("p{version}.nbpol"));
        run(
            netboot()
                .args(["policy", "sign", "--key"])
                .arg(&site.key)
                .args(["--version", version, &source, "--out"])
                .arg(&out),
            true,
        );
        out
    };
    let install = |file: &Path, ok: bool| {
        let out = run(
            site.store_args(netboot().args(["policy", "install"]).arg(file)),
            ok,
        );
        format!("{}{}", stdout(&out), stderr(&out))
    };
    let (v5, v3) = (sign("5"), sign("3"));
    let text = install(&v5, true);
    assert!(text.contains("installed boot policy v5"), "{text}");
    assert_eq!(
        fs::read(site.dir.join("data").join("policy.nbpol")).unwrap(),
        fs::read(&v5).unwrap()
    );
    let text = install(&v5, false);
    assert!(text.contains("already held"), "{text}");
    let text = install(&v3, false);
    assert!(text.contains("v3 is not newer than v5"), "{text}");

    // A bundle exported from this node carries the policy; importing it elsewhere installs it.
    let kernel = site.file("vmlinuz", &content(3, 10_000));
    run(
        site.store_args(netboot().args(["publish", "--key"]).arg(&site.key).args([
            "--name",
            "deb",
            "--version",
            "1",
            "--kernel",
            &kernel,
        ])),
        true,
    );
    let bundle = site.dir.join("bundle");
    let out = run(
        site.store_args(netboot().args(["export", "deb", "--out"]).arg(&bundle)),
        true,
    );
    assert!(
        stdout(&out).contains("with the boot policy"),
        "{}",
        stdout(&out)
    );
    let other = site.dir.join("other").display().to_string();
    let out = run(
        netboot()
            .args(["import", "--data-dir", &other, "--trust", &site.public])
            .arg(&bundle),
        true,
    );
    let text = stdout(&out);
    assert!(
        text.contains("imported deb v1") && text.contains("installed the bundle's boot policy v5"),
        "{text}"
    );
    assert_eq!(
        fs::read(Path::new(&other).join("policy.nbpol")).unwrap(),
        fs::read(&v5).unwrap()
    );
}
