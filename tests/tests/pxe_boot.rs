//! Real PXE clients (QEMU under TCG, in network namespaces) boot a published Debian kernel +
//! busybox initramfs from `netboot node`; the initramfs fetches check.bin of the same release
//! over HTTP from the node and checks its SHA-256 (tests/pxe/build-boot-image.sh).
//!
//! The Secure Boot tests boot Secure Boot-enforcing OVMF (Microsoft keys enrolled) through
//! Debian's signed shim and GRUB, published in the first-stage release, to Debian's signed
//! kernel; the kernel is booted without `quiet` so that it logs the Secure Boot state.
//!
//! These need root, iproute2, QEMU, iPXE/OVMF/PXELINUX files, shim/GRUB/sbsigntool and dnsmasq:
//! `tests/run-all.sh` installs them. A missing prerequisite fails the test with the harness's message naming the
//! package; nothing is skipped. One VM at a time: the machine has 2 cores.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use netboot_tests::{metrics::Metrics, netboot_bin};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Boot {
    code: i32,
    stdout: String,
    server_log: String,
    serial_log: String,
    /// `run-e2e.sh --scrape`: (file name, what the URL returned), before and after each boot.
    scrapes: Vec<(String, String)>,
}

impl Boot {
    fn scrape(&self, name: &str) -> Metrics {
        Metrics::parse(self.scrape_text(name))
    }

    fn scrape_text(&self, name: &str) -> &str {
        let (_, text) = self
            .scrapes
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| {
                panic!(
                    "no {name} among the scrapes {:?}",
                    self.scrapes.iter().map(|(n, _)| n).collect::<Vec<_>>()
                )
            });
        text
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs tests/pxe/run-e2e.sh with netboot-server.sh as the server.
fn boot(scenario: &str, mode: &str, extra: &[&str]) -> Boot {
    boot_within(scenario, mode, extra, 150)
}

fn boot_within(scenario: &str, mode: &str, extra: &[&str], timeout_secs: u32) -> Boot {
    let server: Vec<OsString> = [
        repo().join("tests/pxe/netboot-server.sh").into_os_string(),
        scenario.into(),
    ]
    .into_iter()
    .chain(
        [
            "{IFACE}",
            "{SERVER_IP}",
            "{DHCP_START}",
            "{DHCP_END}",
            "{NETMASK}",
            "{LAB_DIR}",
        ]
        .map(OsString::from),
    )
    .collect();
    run_e2e(&[mode], extra, timeout_secs, &server)
}

/// Runs tests/pxe/run-e2e.sh: `server` in the lab's server namespace, then one boot per mode.
/// The serial logs of all boots are joined in boot order.
fn run_e2e(modes: &[&str], extra: &[&str], timeout_secs: u32, server: &[OsString]) -> Boot {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false),
        "PXE boot tests need root (network namespaces, tap devices): run tests/run-all.sh as root"
    );
    let logs = tempfile::tempdir().unwrap();
    let out = Command::new(repo().join("tests/pxe/run-e2e.sh"))
        .args(modes.iter().flat_map(|m| ["--mode", m]))
        .args([
            "--ra",
            "--timeout",
            &timeout_secs.to_string(),
            "--ready",
            "udp:67",
            "--ready",
            "tcp:80",
        ])
        .args(extra)
        .arg("--logdir")
        .arg(logs.path())
        .arg("--")
        .args(server)
        .env("NETBOOT_BIN", netboot_bin())
        .output()
        .expect("run tests/pxe/run-e2e.sh");
    let read = |name: &str| std::fs::read_to_string(logs.path().join(name)).unwrap_or_default();
    let mut serial_files: Vec<PathBuf> = std::fs::read_dir(logs.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("serial-"))
        .map(|e| e.path())
        .collect();
    // serial-N-MODE.log: N is the boot's number (fewer than 10 boots per run).
    serial_files.sort();
    let serial = serial_files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let scrapes = std::fs::read_dir(logs.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("scrape-"))
        .map(|n| {
            let text = read(&n);
            (n, text)
        })
        .collect();
    let result = Boot {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        server_log: read("server.log"),
        serial_log: serial,
        scrapes,
    };
    eprintln!("{}", result.stdout);
    if result.code == 4 || result.code == 5 {
        panic!(
            "the PXE lab could not run (exit {}): {}\nserver log:\n{}",
            result.code,
            String::from_utf8_lossy(&out.stderr),
            result.server_log
        );
    }
    result
}

fn assert_passed(b: &Boot) {
    assert_reached_userspace(b);
    assert!(
        b.server_log.contains("GET /r/e2e/1/check.bin: 200"),
        "the initramfs fetched check.bin from the node:\n{}",
        b.server_log
    );
}

/// `/metrics` before and after one server-mode boot of image e2e through firmware PXE: both
/// pass promtool, and the boot moved the DHCP, TFTP and stage counters.
fn assert_boot_counted(b: &Boot, after: &str, arch: &str) {
    let (before, after) = (b.scrape("scrape-0-before.log"), b.scrape(after));
    before.promtool_check();
    after.promtool_check();
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let dhcp = "netboot_dhcp_requests_total";
    for client in ["firmware", "ipxe"] {
        let labels = [
            ("mode", "server"),
            ("arch", arch),
            ("client", client),
            ("outcome", "answered"),
        ];
        assert!(
            moved(dhcp, &labels) >= 1.0,
            "{client} DHCP answers counted:\n{}",
            after.text
        );
    }
    assert!(
        moved(
            "netboot_transfers_total",
            &[("protocol", "tftp"), ("result", "complete")]
        ) >= 1.0,
        "the first stage went over TFTP:\n{}",
        after.text
    );
    let stage = "netboot_boot_stage_reached_total";
    assert_eq!(
        moved(stage, &[("stage", "first_stage"), ("image", "")]),
        1.0,
        "{}",
        after.text
    );
    for s in ["config", "kernel", "initrd"] {
        assert_eq!(
            moved(stage, &[("stage", s), ("image", "e2e")]),
            1.0,
            "one boot of e2e reached {s}:\n{}",
            after.text
        );
    }
    assert!(
        moved("netboot_transfer_sent_bytes_total", &[("protocol", "http")]) > 1e6,
        "the kernel and initrd went over HTTP:\n{}",
        after.text
    );
    assert!(after.value("netboot_clients_known", &[]) >= 1.0);
}

fn assert_reached_userspace(b: &Boot) {
    assert!(
        b.code == 0 && b.serial_log.contains("NETBOOT-E2E: PASS"),
        "boot failed (exit {}):\n{}\n--- node log ---\n{}\n--- serial (tail) ---\n{}",
        b.code,
        b.stdout,
        b.server_log,
        b.serial_log
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The kernel's EFI stub and the kernel itself both saw Secure Boot enforced, so every stage
/// before them (shim, GRUB, the kernel) passed the firmware's and shim's signature checks.
fn assert_secure_boot(b: &Boot) {
    for line in [
        "EFI stub: UEFI Secure Boot is enabled.",
        "secureboot: Secure boot enabled",
    ] {
        assert!(
            b.serial_log.contains(line),
            "the kernel did not log `{line}`:\n{}",
            b.serial_log
        );
    }
    let log = &b.server_log;
    assert!(
        log.contains("file=\"shimx64.efi\" outcome=complete")
            && log.contains("file=\"grubx64.efi\" outcome=complete"),
        "shim and GRUB came from the node over TFTP:\n{log}"
    );
    assert!(
        log.contains("grub/grub.cfg: GRUB config: bootstrap") && log.contains("grub/grub.cfg-01-"),
        "GRUB read the bootstrap, then its per-MAC config:\n{log}"
    );
}

#[test]
fn bios_ipxe_with_node_in_proxy_mode_beside_a_site_dhcp_server() {
    let b = boot("proxy", "bios", &["--site-dhcp"]);
    assert_passed(&b);
    let log = &b.server_log;
    assert!(log.contains("proxy OFFER url http://"), "{log}");
    assert!(
        log.contains("belongs to the site DHCP server, ignored (proxy mode)"),
        "the node left the lease to the site server:\n{log}"
    );
    assert!(
        !log.contains(" ACK 10."),
        "proxy mode never hands out an address:\n{log}"
    );
}

/// Also the node's client record after the boot (`/clients.json`, scraped inside the lab):
/// the QEMU client is listed with its architecture, the image it was given and every stage
/// from DHCP to initrd.
#[test]
fn bios_ipxe_with_node_as_dhcp_server() {
    let b = boot(
        "server",
        "bios",
        &["--scrape", "http://{SERVER_IP}/clients.json"],
    );
    assert_passed(&b);
    assert!(b.server_log.contains(": ACK 10."), "{}", b.server_log);
    let text = b.scrape_text("scrape-1-bios.log");
    let view: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("/clients.json: {e}: {text}"));
    let client = view["machines"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["image"]["name"] == "e2e"))
        .unwrap_or_else(|| panic!("no machine given e2e in /clients.json: {text}"));
    assert!(
        client["arch"].as_str().is_some_and(|a| !a.is_empty()) && client["not_answered"].is_null(),
        "{client}"
    );
    for stage in ["dhcp_answered", "config", "kernel", "initrd"] {
        assert!(
            client["last_boot"]["stages"][stage].as_u64().is_some(),
            "no {stage} in {client}"
        );
    }
}

/// Also the boot as `/metrics` counts it: scraped before and after the boot (inside the lab),
/// checked by promtool, and the DHCP, TFTP, first-stage and per-stage counters of image e2e
/// moved. (QEMU's BIOS mode starts in iPXE itself: no firmware DHCP, no TFTP.)
#[test]
fn uefi_firmware_pxe_gets_snponly_over_tftp_then_ipxe_then_http() {
    let b = boot(
        "server",
        "uefi-pxe",
        &["--scrape", "http://{SERVER_IP}/metrics"],
    );
    assert_passed(&b);
    assert_boot_counted(&b, "scrape-1-uefi-pxe.log", "efi_x64");
    let log = &b.server_log;
    assert!(
        log.contains("tftp file snponly.efi"),
        "DHCP offered snponly.efi to the firmware:\n{log}"
    );
    assert!(
        log.contains("file=\"snponly.efi\" outcome=complete"),
        "snponly.efi went over TFTP:\n{log}"
    );
    assert!(
        log.contains("arch=x86_64&platform=efi: 200 script: client"),
        "then iPXE (EFI) asked for its script:\n{log}"
    );
}

#[test]
fn uefi_firmware_pxe_with_node_in_proxy_mode() {
    let b = boot("proxy", "uefi-pxe", &["--site-dhcp"]);
    assert_passed(&b);
    let log = &b.server_log;
    assert!(
        log.contains("firmware: proxy OFFER tftp file snponly.efi"),
        "{log}"
    );
    assert!(
        !log.contains(" ACK 10."),
        "proxy mode never hands out an address:\n{log}"
    );
}

/// What a UEFI HTTP Boot client (OVMF's "UEFI HTTPv4" entry) must see from the node: option
/// 60 `HTTPClient` answered with the first-stage program as a full URL, fetched over HTTP by the
/// firmware itself (nothing over TFTP), then iPXE asking for its script.
fn assert_uefi_http_boot(b: &Boot) {
    let (log, serial) = (&b.server_log, &b.serial_log);
    assert!(
        serial.contains("Start HTTP Boot over IPv4") && serial.contains("\"UEFI HTTPv4"),
        "the firmware booted through its HTTP Boot entry:\n{serial}"
    );
    assert!(
        log.lines().any(
            |l| l.contains("DISCOVER port 67 arch=HTTP x86-64 vendor=HTTPClient")
                && l.contains("url http://")
                && l.contains("/first-stage/snponly.efi")
                && l.contains("(UEFI HTTP boot, HTTP x86-64)")
        ),
        "the node answered the HTTP Boot DISCOVER with the boot file URL:\n{log}"
    );
    assert!(
        log.contains("GET /first-stage/snponly.efi: 200"),
        "the firmware fetched snponly.efi over HTTP:\n{log}"
    );
    assert!(
        !log.contains("tftp transfer"),
        "nothing went over TFTP:\n{log}"
    );
    assert!(
        log.contains("arch=x86_64&platform=efi: 200 script: client"),
        "then iPXE (EFI, on the firmware's SNP) asked for its script:\n{log}"
    );
}

#[test]
fn uefi_http_boot_with_node_as_dhcp_server() {
    let b = boot("server", "uefi-http", &[]);
    assert_passed(&b);
    assert_uefi_http_boot(&b);
    assert!(
        b.server_log.contains(": ACK 10.")
            && b.server_log.contains("REQUEST port 67 arch=HTTP x86-64"),
        "the node leased the address to the HTTP Boot client:\n{}",
        b.server_log
    );
}

#[test]
fn uefi_http_boot_with_node_in_proxy_mode_beside_a_site_dhcp_server() {
    let b = boot("proxy", "uefi-http", &["--site-dhcp"]);
    assert_passed(&b);
    assert_uefi_http_boot(&b);
    let log = &b.server_log;
    assert!(
        log.contains("vendor=HTTPClient firmware: proxy OFFER url http://"),
        "{log}"
    );
    assert!(
        !log.contains(" ACK 10.") && !log.contains(" port 4011 arch="),
        "proxy mode never hands out an address, and HTTP Boot takes the URL from the proxy \
         offer (no boot server request):\n{log}"
    );
}

#[test]
fn a_node_on_a_host_with_several_interfaces_serves_on_the_configured_one() {
    let b = boot("multihomed", "bios", &[]);
    assert_passed(&b);
    assert!(
        b.server_log
            .contains("listening on 0.0.0.0:67 and 0.0.0.0:4011 on nbsv"),
        "DHCP bound to the boot interface:\n{}",
        b.server_log
    );
}

#[test]
fn bios_through_pxelinux() {
    let b = boot("pxelinux", "bios", &[]);
    assert_passed(&b);
    let log = &b.server_log;
    assert!(log.contains("hands over to PXELINUX"), "{log}");
    assert!(
        log.contains("GET /pxelinux/lpxelinux.0: 200")
            && log.contains("GET /pxelinux/ldlinux.c32: 200"),
        "{log}"
    );
    assert!(
        log.contains("pxelinux.cfg/01-") && log.contains("boots e2e v1"),
        "{log}"
    );
}

#[test]
fn a_file_tampered_in_the_store_is_refused_and_the_client_never_gets_it() {
    let b = boot("tamper", "bios", &[]);
    assert_eq!(
        b.code, 1,
        "the client must report a failed check:\n{}",
        b.stdout
    );
    assert!(
        b.serial_log.contains("NETBOOT-E2E: FAIL"),
        "{}",
        b.serial_log
    );
    assert!(
        b.server_log.contains("GET /r/e2e/1/check.bin: 500 REFUSED"),
        "{}",
        b.server_log
    );
    assert!(
        !b.server_log.contains("GET /r/e2e/1/check.bin: 200"),
        "{}",
        b.server_log
    );
}

#[test]
fn secure_boot_uefi_through_shim_and_signed_grub_with_node_in_proxy_mode() {
    // GRUB 2.06 (Debian 12's signed build) takes its TFTP server from the site's DHCP ACK,
    // not from the node's proxy offer: the site names the node as next-server
    // (docs/operations.md). Shim and the NBP still come by proxy DHCP.
    let b = boot_within(
        "sb-proxy",
        "uefi-sb",
        &["--site-dhcp", "--site-next-server"],
        240,
    );
    assert_passed(&b);
    assert_secure_boot(&b);
    let log = &b.server_log;
    assert!(
        log.contains("firmware: proxy OFFER tftp file shimx64.efi"),
        "{log}"
    );
    assert!(
        !log.contains(" ACK 10."),
        "proxy mode never hands out an address:\n{log}"
    );
    assert!(log.contains("boots e2e v1 (default image)"), "{log}");
    assert!(
        log.contains("debian-installer/amd64/grub/grub.cfg: GRUB config: bootstrap"),
        "the d-i GRUB build found its config under its own prefix:\n{log}"
    );
    assert!(
        log.contains("file=\"r/e2e/1/vmlinuz\" outcome=complete"),
        "Debian 12's signed GRUB has no http module: the kernel came over TFTP:\n{log}"
    );
}

#[test]
fn secure_boot_in_server_mode_boots_the_image_assigned_to_the_mac_over_tftp() {
    let b = boot_within("sb-server", "uefi-sb", &[], 240);
    assert_reached_userspace(&b);
    assert_secure_boot(&b);
    let log = &b.server_log;
    assert!(log.contains(": ACK 10."), "{log}");
    assert!(
        log.contains("boots e2e-b v1 (assigned to this MAC)"),
        "the per-MAC config chose the assigned image:\n{log}"
    );
    // The kernel command line of the image that booted pins its own release: the initramfs
    // fetched e2e-b's check.bin, never the default image's.
    assert!(log.contains("GET /r/e2e-b/1/check.bin: 200"), "{log}");
    assert!(!log.contains("/r/e2e/1/"), "{log}");
    assert!(
        log.contains("file=\"r/e2e-b/1/vmlinuz\" outcome=complete")
            && log.contains("file=\"r/e2e-b/1/initrd.img\" outcome=complete"),
        "GRUB fetched kernel and initrd over TFTP:\n{log}"
    );
}

#[test]
fn secure_boot_refuses_a_kernel_whose_signature_was_stripped() {
    let b = boot_within("sb-unsigned", "uefi-sb", &[], 240);
    let log = &b.server_log;
    assert!(
        log.contains("boots e2e v2 (default image)"),
        "the node chose the new release:\n{log}"
    );
    // The publisher signed the release, so the node serves the kernel: only the client's
    // Secure Boot can tell that the kernel itself is not signed.
    assert!(
        log.contains("GET /r/e2e/2/vmlinuz: 200")
            || log.contains("file=\"r/e2e/2/vmlinuz\" outcome=complete"),
        "the node served the stripped kernel:\n{log}"
    );
    assert_eq!(b.code, 1, "the boot must fail:\n{}", b.stdout);
    assert!(
        b.serial_log.contains("bad shim signature"),
        "GRUB refused the kernel through shim:\n{}",
        b.serial_log
    );
    assert!(
        b.serial_log.contains("netboot: booting e2e v2 failed"),
        "{}",
        b.serial_log
    );
    assert!(
        !b.serial_log.contains("NETBOOT-E2E: initramfs up"),
        "the unsigned kernel must not reach userspace:\n{}",
        b.serial_log
    );
}

#[test]
fn arm64_uefi_secure_boot_through_shim_and_signed_grub_with_node_as_dhcp_server() {
    // One boot: arm64 under TCG is slow (the installer's 33 MB kernel and 40 MB initrd).
    let b = boot_within("arm64-grub", "arm64-pxe", &[], 420);
    assert_reached_userspace(&b);
    let (log, serial) = (&b.server_log, &b.serial_log);
    assert!(
        log.contains("GET /r/e2e-arm64/1/check.bin: 200"),
        "the initramfs fetched the arm64 release's check.bin from the node:\n{log}"
    );
    assert!(
        serial.contains("aarch64)"),
        "an arm64 kernel reached userspace:\n{serial}"
    );
    for line in [
        "EFI stub: UEFI Secure Boot is enabled.",
        "secureboot: Secure boot enabled",
    ] {
        assert!(
            serial.contains(line),
            "the kernel did not log `{line}`:\n{serial}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("REQUEST port 67 arch=EFI arm64")
                && l.contains(": ACK 10.")
                && l.contains("tftp file bootnetaa64.efi")),
        "the node leased the arm64 firmware an address and gave it the signed shim:\n{log}"
    );
    for file in ["bootnetaa64.efi", "grubaa64.efi"] {
        assert!(
            log.contains(&format!("file=\"{file}\" outcome=complete")),
            "{file} came from the first-stage release over TFTP:\n{log}"
        );
    }
    assert!(
        log.contains("debian-installer/arm64/grub/grub.cfg: GRUB config: bootstrap")
            && log.contains("debian-installer/arm64/grub/grub.cfg-01-"),
        "GRUB read the bootstrap under its d-i arm64 prefix, then its per-MAC config:\n{log}"
    );
    // Debian 12's arm64 GRUB has no http module either: kernel and initrd over TFTP.
    assert!(
        log.contains("file=\"r/e2e-arm64/1/linux\" outcome=complete")
            && log.contains("file=\"r/e2e-arm64/1/initrd.gz\" outcome=complete"),
        "GRUB fetched the signed kernel and the initrd from the node:\n{log}"
    );
}

/// `netboot quick` with no config file and no --interface: the server namespace has a
/// default route into the lab (via the site DHCP server's address), so the node finds its
/// interface as on a real host; a BIOS and a UEFI client boot the image it published, beside
/// the site's DHCP server. Then it is stopped with SIGINT (quick-server.sh) and must exit 0
/// having removed its temporary directory.
#[test]
fn netboot_quick_boots_bios_and_uefi_clients_with_no_config_and_cleans_up_on_ctrl_c() {
    let state = tempfile::tempdir().unwrap();
    let server = [
        repo().join("tests/pxe/quick-server.sh").into_os_string(),
        "{IFACE}".into(),
        "{SITE_IP}".into(),
        state.path().into(),
    ];
    let b = run_e2e(&["bios", "uefi-pxe"], &["--site-dhcp"], 240, &server);
    assert_reached_userspace(&b);
    assert_eq!(
        b.serial_log.matches("NETBOOT-E2E: PASS").count(),
        2,
        "both clients must pass:\n{}",
        b.stdout
    );
    let log = &b.server_log;
    assert!(
        log.contains("netboot quick: every PXE client on nbsv"),
        "the default route's interface (the lab's) was picked:\n{log}"
    );
    for (arch, platform) in [("i386", "pcbios"), ("x86_64", "efi")] {
        assert!(
            log.lines().any(|l| l.contains(&format!(
                "arch={arch}&platform={platform}: 200 script: client"
            )) && l.contains("boots quick v1 (default image)")),
            "iPXE ({arch}) got the script for the quick image:\n{log}"
        );
    }
    assert!(
        log.contains("firmware: proxy OFFER tftp file snponly.efi")
            && log.contains("proxy OFFER url http://"),
        "{log}"
    );
    assert_eq!(
        log.matches("GET /r/quick/1/check.bin: 200").count(),
        2,
        "each initramfs fetched check.bin from the node:\n{log}"
    );
    assert!(
        !log.contains(" ACK 10."),
        "proxy mode never hands out an address:\n{log}"
    );
    // Its own progress lines (stdout), one per client and stage. QEMU's BIOS NIC ROM is
    // iPXE already, so only the UEFI firmware fetches a first stage.
    let stages = [
        "DHCP: told where to boot from",
        "got its boot script (quick v1)",
        "got the kernel of quick v1",
        "got an initrd of quick v1",
    ];
    for (arch, first_stage) in [
        ("[BIOS x86]", None),
        ("[EFI x86-64]", Some("got its first-stage program")),
    ] {
        for stage in stages.iter().copied().chain(first_stage) {
            assert_eq!(
                log.lines()
                    .filter(|l| l.contains(arch) && l.ends_with(stage))
                    .count(),
                1,
                "one progress line `{arch} … {stage}`:\n{log}"
            );
        }
    }

    let exit = std::fs::read_to_string(state.path().join("quick.exit")).unwrap_or_else(|e| {
        panic!("netboot quick did not end after SIGINT (no quick.exit: {e}):\n{log}")
    });
    assert_eq!(exit.trim(), "0", "netboot quick's exit status after SIGINT");
    let work = log
        .split_once("working in ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("netboot quick names its temporary directory:\n{log}"));
    assert!(
        Path::new(work).starts_with(state.path().join("tmp")),
        "{work} is in the TMPDIR it was given"
    );
    assert!(!Path::new(work).exists(), "{work} was removed");
    let left: Vec<_> = std::fs::read_dir(state.path().join("tmp"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "netboot quick left files behind: {left:?}");
}
