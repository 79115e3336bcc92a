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

/// Fetches with atftp at windowsize 16, blksize 1468; returns the bytes.
fn atftp_windowed(t: &Tftp, path: &str) -> Vec<u8> {
    let got = t.site.dir().join("atftp.out");
    let atftp = Command::new("atftp")
        .args([
            "--option",
            "windowsize 16",
            "--option",
            "blksize 1468",
            "-g",
            "-r",
            path,
            "-l",
        ])
        .arg(&got)
        .args(["127.0.0.1", &t.port.to_string()])
        .output()
        .expect("atftp is needed for these tests: apt-get install atftp");
    assert!(
        atftp.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&atftp.stderr)
    );
    fs::read(&got).unwrap()
}

#[test]
fn first_stage_programs_come_from_the_verified_release() {
    let t = setup();
    assert_eq!(fetch(&t, "undionly.kpxe", "512").1, content(1, 70_000));
    assert_eq!(fetch(&t, "snponly.efi", "1468").1, content(2, 2_000_000));
    assert_eq!(atftp_windowed(&t, "snponly.efi"), content(2, 2_000_000));
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

/// A site whose UEFI machines boot through shim + GRUB: GRUB finds its configs where the
/// signed Debian builds look, and kernels over TFTP (the HTTP port is not 80 here).
fn grub_site() -> Tftp {
    let site = LoopbackSite::new(
        "[boot]\nefi_loader = \"grub\"\ndefault_image = \"deb\"\n[machines]\n\"52:54:00:12:34:56\" = \"alt\"\n",
    );
    let (shim, grub) = (
        site.file("shimx64.efi", &content(4, 900_000)),
        site.file("grubx64.efi", &content(5, 1_500_000)),
    );
    site.publish(&["--name", "ipxe", "--file", &shim, "--file", &grub]);
    let k = site.file("vmlinuz", &content(3, 3_000_000));
    let i = site.file("initrd.img", &content(6, 500_000));
    site.publish(&[
        "--name",
        "deb",
        "--kernel",
        &k,
        "--initrd",
        &i,
        "--cmdline",
        "console=ttyS0 check={{image_url}}/x",
    ]);
    let k2 = site.file("vmlinuz-alt", &content(7, 1000));
    site.publish(&["--name", "alt", "--kernel", &k2, "--cmdline", "alt"]);
    let node = site.start();
    Tftp {
        port: site.tftp_port,
        site,
        node,
    }
}

#[test]
fn grub_configs_are_generated_where_signed_grub_looks() {
    let t = grub_site();
    assert_eq!(fetch(&t, "shimx64.efi", "1468").1, content(4, 900_000));
    assert_eq!(fetch(&t, "grubx64.efi", "1468").1, content(5, 1_500_000));
    for prefix in ["grub", "debian-installer/amd64/grub"] {
        let (code, cfg) = fetch(&t, &format!("{prefix}/grub.cfg"), "1468");
        let cfg = String::from_utf8_lossy(&cfg);
        assert_eq!(code, 0, "{prefix}");
        assert!(
            cfg.contains("source \"$prefix/grub.cfg-01-$nb1-$nb2-$nb3-$nb4-$nb5-$nb6\""),
            "{cfg}"
        );
        // Without a MAC: the default image.
        assert!(
            cfg.contains("set nb_files='(tftp,127.0.0.1)'\n")
                && cfg.contains("if linux ${nb_files}/r/deb/1/vmlinuz "),
            "{cfg}"
        );
        let (code, _) = fetch(&t, &format!("{prefix}/x86_64-efi/grub.cfg"), "512");
        assert_ne!(code, 0, "the memdisk script's probe is file-not-found");
    }
    let (code, alt) = fetch(&t, "grub/grub.cfg-01-52-54-00-12-34-56", "512");
    let alt = String::from_utf8_lossy(&alt).into_owned();
    assert_eq!(code, 0);
    assert!(
        alt.contains("if linux ${nb_files}/r/alt/1/vmlinuz-alt alt; then"),
        "the assigned image: {alt}"
    );
    let (_, cfg) = fetch(&t, "grub/grub.cfg-01-52-54-00-00-00-09", "512");
    let cfg = String::from_utf8_lossy(&cfg);
    assert!(
        cfg.contains(&format!(
            "if linux ${{nb_files}}/r/deb/1/vmlinuz console=ttyS0 check=http://127.0.0.1:{}/r/deb/1/x; then",
            t.site.http_port
        )) && cfg.contains("if initrd ${nb_files}/r/deb/1/initrd.img; then"),
        "the default image: {cfg}"
    );
    let (code, _) = fetch(&t, "grub/grub.cfg-0A0A0A64", "512");
    assert_ne!(code, 0, "hex-IP probes are file-not-found");
    // The same configs over HTTP, for a GRUB whose prefix is an HTTP URL.
    let http = Command::new("curl")
        .args([
            "-sf",
            &format!("{}/grub/grub.cfg-01-52-54-00-12-34-56", t.site.base_url()),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&http.stdout), alt);
    let log = t.node.log_text();
    assert!(
        log.contains("grub/grub.cfg-01-52-54-00-12-34-56: GRUB config: 52:54:00:12:34:56 boots alt v1 (assigned to this MAC)"),
        "{log}"
    );
}

#[test]
fn release_files_over_tftp_are_verified_and_windowed() {
    let t = grub_site();
    assert_eq!(atftp_windowed(&t, "r/deb/1/vmlinuz"), content(3, 3_000_000));
    let log = t.node.log_text();
    assert!(
        log.contains("file=\"r/deb/1/vmlinuz\" outcome=complete") && log.contains("windowsize=16"),
        "{log}"
    );
    for path in [
        "r/deb/2/vmlinuz",
        "r/deb/1/nope",
        "r/nope/1/vmlinuz",
        "r/deb/x/vmlinuz",
    ] {
        let (code, bytes) = fetch(&t, path, "512");
        assert!(code != 0 && bytes.is_empty(), "{path} was served");
    }
    // Changed on disk behind the store's back: refused over TFTP exactly as over HTTP.
    let blob = t.site.blob(&content(6, 500_000));
    let mut bytes = fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&blob, bytes).unwrap();
    let (code, got) = fetch(&t, "r/deb/1/initrd.img", "1468");
    assert!(code != 0 && got.is_empty(), "a tampered initrd was served");
    let log = t.node.log_text();
    assert!(
        log.contains("r/deb/1/initrd.img: REFUSED, failed its integrity check"),
        "{log}"
    );
}
