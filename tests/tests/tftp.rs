//! The node's TFTP server over loopback with real clients: first-stage programs come from the
//! verified store, traversal is refused, a program changed on disk is refused, and PXELINUX
//! configs are generated.

use std::{fs, process::Command};

use netboot_tests::{content, LoopbackSite, NodeProcess};

struct Tftp {
    site: LoopbackSite,
    port: u16,
    node: NodeProcess,
}

fn setup() -> Tftp {
    let site = LoopbackSite::new("[boot]\nbios_loader = \"pxelinux\"\ndefault_image = \"deb\"\n");
    let (ipxe, snp) = (
        site.file("undionly.kpxe", &content(1, 70_000)),
        site.file("snponly.efi", &content(2, 2_000_000)),
    );
    site.publish(&["--name", "ipxe", "--file", &ipxe, "--file", &snp]);
    let k = site.file("vmlinuz", &content(3, 1000));
    site.publish(&["--name", "deb", "--kernel", &k, "--cmdline", "quiet"]);
    let node = site.start();
    Tftp {
        port: site.tftp_port,
        site,
        node,
    }
}

/// Fetches with curl; returns (curl exit code, bytes).
fn fetch(t: &Tftp, path: &str, blksize: &str) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--tftp-blksize",
            blksize,
            &format!("tftp://127.0.0.1:{}/{path}", t.port),
        ])
        .output()
        .expect("curl is needed for these tests: apt-get install curl");
    (out.status.code().unwrap_or(-1), out.stdout)
}

#[test]
fn first_stage_programs_come_from_the_verified_release() {
    let t = setup();
    assert_eq!(fetch(&t, "undionly.kpxe", "512").1, content(1, 70_000));
    assert_eq!(fetch(&t, "snponly.efi", "1468").1, content(2, 2_000_000));
    let atftp = Command::new("atftp")
        .args([
            "--option",
            "windowsize 16",
            "--option",
            "blksize 1468",
            "-g",
            "-r",
            "snponly.efi",
            "-l",
        ])
        .arg(t.site.dir().join("got.efi"))
        .args(["127.0.0.1", &t.port.to_string()])
        .output()
        .expect("atftp is needed for these tests: apt-get install atftp");
    assert!(
        atftp.status.success(),
        "{}",
        String::from_utf8_lossy(&atftp.stderr)
    );
    assert_eq!(
        fs::read(t.site.dir().join("got.efi")).unwrap(),
        content(2, 2_000_000)
    );
    let log = t.node.log_text();
    assert!(
        log.contains("file=\"snponly.efi\" outcome=complete"),
        "{log}"
    );
    assert!(log.contains("windowsize=16"), "{log}");
}

#[test]
fn traversal_and_unknown_names_get_errors_not_bytes() {
    let t = setup();
    for path in [
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "nope.efi",
        "vmlinuz",
    ] {
        let (code, bytes) = fetch(&t, path, "512");
        assert_ne!(code, 0, "{path} was served");
        assert!(bytes.is_empty(), "{path} returned bytes");
    }
    // Still serving afterwards.
    assert_eq!(fetch(&t, "undionly.kpxe", "512").1, content(1, 70_000));
}

#[test]
fn a_first_stage_program_changed_on_disk_is_refused() {
    let t = setup();
    assert_eq!(fetch(&t, "undionly.kpxe", "512").1, content(1, 70_000));
    let blob = t.site.blob(&content(1, 70_000));
    let mut bytes = fs::read(&blob).unwrap();
    bytes[5] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let (code, got) = fetch(&t, "undionly.kpxe", "512");
    assert_ne!(code, 0);
    assert!(got.is_empty());
    assert!(
        t.node
            .log_text()
            .contains("undionly.kpxe: REFUSED, failed its integrity check"),
        "{}",
        t.node.log_text()
    );
    assert_eq!(
        fetch(&t, "snponly.efi", "1468").1,
        content(2, 2_000_000),
        "other files still served"
    );
}

#[test]
fn pxelinux_configs_are_generated() {
    let t = setup();
    let (code, cfg) = fetch(&t, "pxelinux.cfg/01-52-54-00-12-34-56", "512");
    let cfg = String::from_utf8_lossy(&cfg);
    assert_eq!(code, 0);
    assert!(
        cfg.contains("DEFAULT deb\n") && cfg.contains("/r/deb/1/vmlinuz"),
        "{cfg}"
    );
    let (code, _) = fetch(&t, "pxelinux.cfg/C0A80001", "512");
    assert_ne!(code, 0, "probes for hex-IP names are file-not-found");
}
