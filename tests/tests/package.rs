//! The Debian package and its systemd unit (packaging/debian/, `[package.metadata.deb]` in
//! cli/Cargo.toml).
//!
//! The package test installs the package on this machine (CI is root) and purges it again,
//! even when an assertion fails. It packages the debug binary the test run has already built
//! (`cargo deb --no-build --profile dev --fast`, ~30 s) instead of letting cargo-deb build a
//! release binary (~5 min on 2 cores): what is tested is the packaging, not the optimiser.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use netboot_tests::{netboot_bin, run, stderr, stdout, wait_until, Netns};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn unit_file() -> PathBuf {
    workspace().join("packaging/debian/netboot.service")
}

/// `systemd-analyze verify` exits 0 on unknown keys and bad values and only warns, so a clean
/// unit is one with no output at all.
fn verify_unit(unit: &Path) -> String {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze not found: install systemd (tests/install-deps.sh)");
    format!("{}{}", stdout(&out), stderr(&out))
        .trim()
        .to_string()
        + if out.status.success() {
            ""
        } else {
            "\n(exit status non-zero)"
        }
}

#[test]
fn the_systemd_unit_verifies_clean() {
    let tmp = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let text = fs::read_to_string(unit_file())
        .unwrap()
        .replace("/usr/bin/netboot", &netboot_bin().display().to_string());
    let unit = tmp.path().join("netboot.service");
    fs::write(&unit, &text).unwrap();
    let out = verify_unit(&unit);
    assert!(
        out.is_empty(),
        "systemd-analyze verify {}:\n{out}",
        unit.display()
    );
    // The check sees mistakes: the same unit with a misspelt setting is reported.
    let broken = tmp.path().join("broken.service");
    fs::write(
        &broken,
        text.replace("ProtectSystem=strict", "ProtectSystem=strct"),
    )
    .unwrap();
    let out = verify_unit(&broken);
    assert!(out.contains("protect system value"), "{out}");
}

/// Purges the package when dropped, so a failed assertion leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "netboot"]).status();
    }
}

fn cargo_deb() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let path = home.join("bin/cargo-deb");
    assert!(
        path.exists(),
        "{} not found: tests/install-deps.sh installs cargo-deb (cargo install cargo-deb --locked --version …)",
        path.display()
    );
    path
}

fn getent(db: &str, name: &str) -> Option<String> {
    let out = Command::new("getent").args([db, name]).output().ok()?;
    out.status.success().then(|| stdout(&out))
}

#[test]
fn the_package_installs_runs_with_only_its_capability_and_purges_clean() {
    let installed_before = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "netboot"])
        .output()
        .is_ok_and(|o| stdout(&o).contains("installed"));
    assert!(
        !installed_before && !Path::new("/etc/netboot").exists() && getent("passwd", "netboot").is_none(),
        "this test installs and purges the netboot package system-wide: remove the installed netboot package, /etc/netboot and the netboot user first (or run it on a CI machine)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("netboot.deb");
    let bin = netboot_bin();
    run(
        Command::new(cargo_deb())
            .current_dir(workspace())
            .args([
                "deb",
                "-p",
                "netboot-cli",
                "--no-build",
                "--profile",
                "dev",
                "--fast",
            ])
            .arg("--output")
            .arg(&deb),
        true,
    );
    assert!(bin.exists());

    let guard = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb), true);
    let version = run(Command::new("/usr/bin/netboot").arg("--version"), true);
    assert_eq!(
        stdout(&version).trim(),
        format!("netboot {}", env!("CARGO_PKG_VERSION"))
    );
    let unit = Path::new("/usr/lib/systemd/system/netboot.service");
    assert_eq!(
        fs::read_to_string(unit).unwrap(),
        fs::read_to_string(unit_file()).unwrap()
    );
    let out = verify_unit(unit);
    assert!(out.is_empty(), "installed unit: {out}");
    let conffiles = run(
        Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "netboot"]),
        true,
    );
    assert!(
        stdout(&conffiles).contains("/etc/netboot/netboot.toml"),
        "{}",
        stdout(&conffiles)
    );
    let user = getent("passwd", "netboot").expect("postinst created no netboot user");
    assert!(
        user.trim_end()
            .ends_with(":/var/lib/netboot:/usr/sbin/nologin"),
        "{user}"
    );

    // What the unit grants is enough: as the netboot user with CAP_NET_BIND_SERVICE only (no
    // CAP_NET_RAW), the installed binary binds DHCP 67 and 4011 to an interface, TFTP 69 and
    // HTTP 80, in a namespace of its own.
    let ns = Netns::new("nb-pkg");
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    run(
        Command::new("chown")
            .arg("-R")
            .arg("netboot:netboot")
            .arg(tmp.path()),
        true,
    );
    let config = tmp.path().join("node.toml");
    fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[dhcp]\nmode = \"proxy\"\ninterface = \"lo\"\nserver_ip = \"127.0.0.1\"\n[tftp]\nlisten = \"127.0.0.1:69\"\n[http]\nlisten = \"127.0.0.1:80\"\n",
            data.display()
        ),
    )
    .unwrap();
    let log = tmp.path().join("node.log");
    let mut node = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "setpriv",
            "--reuid=netboot",
            "--regid=netboot",
            "--init-groups",
            "--inh-caps=-all,+net_bind_service",
            "--ambient-caps=-all,+net_bind_service",
            "--bounding-set=-all,+net_bind_service",
            "--no-new-privs",
            "/usr/bin/netboot",
            "node",
            "--config",
        ])
        .arg(&config)
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the node to come up as netboot",
            Duration::from_secs(60),
            &log_text,
            || log_text().contains("netboot node up"),
        )
    }));
    let _ = node.kill();
    let _ = node.wait();
    if let Err(e) = up {
        std::panic::resume_unwind(e);
    }

    drop(guard);
    assert!(
        !Path::new("/usr/bin/netboot").exists(),
        "purge left the binary"
    );
    assert!(
        !Path::new("/etc/netboot/netboot.toml").exists(),
        "purge left the conffile"
    );
    assert!(getent("passwd", "netboot").is_none(), "purge left the user");
}
