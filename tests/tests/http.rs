//! The node's HTTP server, over loopback, as iPXE and curl see it: scripts per machine,
//! files with HEAD/Range/ETag, traversal refused, a file changed on disk refused at serve
//! time while intact files keep being served, and changed in the middle of a transfer
//! cut before a changed byte goes out; expired releases are not served by hash; floods of
//! idle connections leave room for real clients; a shutdown says it stopped transfers; the
//! refusals and stages show in `/metrics`.

use std::{fs, process::Command};

use netboot_tests::{content, metrics::Metrics, wait_until, LoopbackSite, NodeProcess};

struct Http {
    site: LoopbackSite,
    base: String,
    node: NodeProcess,
}

/// (status, headers, body)
fn curl(args: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--path-as-is",
            "-D",
            "/dev/stderr",
            "-o",
            "/dev/stdout",
            "-w",
            "",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is needed for these tests: apt-get install curl");
    let headers = String::from_utf8_lossy(&out.stderr).to_string();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, headers.to_lowercase(), out.stdout)
}

fn setup(extra_config: &str) -> Http {
    let site = LoopbackSite::new(extra_config);
    let (k, i) = (
        site.file("vmlinuz", &content(1, 1_500_000)),
        site.file("initrd.img", &content(2, 200_000)),
    );
    site.publish(&[
        "--name",
        "debian",
        "--kernel",
        &k,
        "--initrd",
        &i,
        "--cmdline",
        "console=ttyS0 fetch={{image_url}}/initrd.img BOOTIF={{bootif}} ip={{ip}}",
    ]);
    let r = site.file("rescue.iso", &content(3, 300_000));
    site.publish(&["--name", "rescue", "--iso", &r]);
    let node = site.start();
    Http {
        base: site.base_url(),
        site,
        node,
    }
}

#[test]
fn scripts_follow_assignment_default_and_menu() {
    let h = setup("[machines]\n\"52:54:00:12:34:56\" = \"debian\"\n");
    let (status, _, body) = curl(&[], &format!("{}/boot.ipxe", h.base));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("boot.ipxe?mac=${mac}&ip=${ip}"));

    let (_, _, body) = curl(
        &[],
        &format!("{}/boot.ipxe?mac=52:54:00:12:34:56&ip=10.1.2.3", h.base),
    );
    let script = String::from_utf8_lossy(&body);
    assert!(script.contains(&format!("kernel {}/r/debian/1/vmlinuz initrd=initrd.img console=ttyS0 fetch={}/r/debian/1/initrd.img BOOTIF=01-52-54-00-12-34-56 ip=10.1.2.3", h.base, h.base)), "{script}");

    // Unassigned, no default: a menu of both images, local disk by default.
    let (_, _, body) = curl(&[], &format!("{}/boot.ipxe?mac=52:54:00:00:00:09", h.base));
    let menu = String::from_utf8_lossy(&body);
    assert!(
        menu.contains("item img0 debian (v1)") && menu.contains("item img1 rescue (v1)"),
        "{menu}"
    );
    assert!(menu.contains("--default local"), "{menu}");
    let (_, _, body) = curl(
        &[],
        &format!("{}/boot/rescue.ipxe?mac=52:54:00:00:00:09", h.base),
    );
    assert!(String::from_utf8_lossy(&body).contains(&format!(
        "sanboot --no-describe {}/r/rescue/1/rescue.iso",
        h.base
    )));

    let log = h.node.log_text();
    assert!(
        log.contains("client 52:54:00:12:34:56 boots debian v1 (assigned to this MAC)"),
        "{log}"
    );
    assert!(
        log.contains("client 52:54:00:00:00:09 gets the menu of 2 images"),
        "{log}"
    );
}

#[test]
fn default_image_applies_to_unassigned_machines() {
    let h = setup("[boot]\ndefault_image = \"rescue\"\n");
    let (_, _, body) = curl(&[], &format!("{}/boot.ipxe?mac=52:54:00:00:00:09", h.base));
    assert!(
        String::from_utf8_lossy(&body).contains("sanboot"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn files_support_head_range_and_etag() {
    let h = setup("");
    let kernel = content(1, 1_500_000);
    let etag = format!("\"{}\"", blake3::hash(&kernel).to_hex());
    let url = format!("{}/r/debian/1/vmlinuz", h.base);

    let (status, headers, body) = curl(&[], &url);
    assert_eq!(status, 200);
    assert_eq!(body, kernel);
    assert!(headers.contains("content-length: 1500000"), "{headers}");
    assert!(headers.contains(&format!("etag: {etag}")), "{headers}");

    let raw = raw_request(
        &h.base,
        "HEAD /r/debian/1/vmlinuz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") && head.to_lowercase().contains("content-length: 1500000"),
        "{head}"
    );
    assert_eq!(body, "", "HEAD sends no body");

    let (status, headers, body) = curl(&["-r", "1000-1999"], &url);
    assert_eq!(status, 206);
    assert_eq!(body, &kernel[1000..2000]);
    assert!(
        headers.contains("content-range: bytes 1000-1999/1500000"),
        "{headers}"
    );

    // Each transfer with a body ends with a line that says how much went out and how fast;
    // a HEAD answer has none.
    wait_until(
        "the completion lines of the GET and the range",
        std::time::Duration::from_secs(5),
        &|| h.node.log_text(),
        || {
            let log = h.node.log_text();
            log.contains("GET /r/debian/1/vmlinuz: sent 1500000 bytes in")
                && log.contains("GET /r/debian/1/vmlinuz: sent 1000 bytes in")
        },
    );
    assert!(
        !h.node.log_text().contains("HEAD /r/debian/1/vmlinuz: sent"),
        "{}",
        h.node.log_text()
    );

    let (status, _, body) = curl(&["-H", "Range: bytes=-100"], &url);
    assert_eq!(
        (status, body.as_slice()),
        (206, &kernel[kernel.len() - 100..])
    );

    // A last position past the end, even the largest number, means "to the end" (RFC 9110).
    let (status, headers, body) = curl(&["-H", "Range: bytes=0-18446744073709551615"], &url);
    assert_eq!((status, body.len()), (206, kernel.len()));
    assert_eq!(body, kernel);
    assert!(
        headers.contains("content-range: bytes 0-1499999/1500000"),
        "{headers}"
    );

    let (status, headers, _) = curl(&["-H", "Range: bytes=2000000-"], &url);
    assert_eq!(status, 416);
    assert!(headers.contains("content-range: bytes */1500000"));

    let (status, _, body) = curl(&["-H", &format!("If-None-Match: {etag}")], &url);
    assert_eq!((status, body.len()), (304, 0));

    // The newest-version alias and the content address serve the same bytes.
    let (_, _, body) = curl(&[], &format!("{}/images/debian/vmlinuz", h.base));
    assert_eq!(body, kernel);
    let (_, _, body) = curl(
        &[],
        &format!("{}/blobs/{}", h.base, blake3::hash(&kernel).to_hex()),
    );
    assert_eq!(body, kernel);
}

#[test]
fn traversal_and_unknown_paths_are_refused() {
    let h = setup("");
    let passwd = fs::read("/etc/passwd").unwrap_or_default();
    for path in [
        "/r/debian/1/../../../../etc/passwd",
        "/r/debian/1/%2e%2e/%2e%2e/etc/passwd",
        "/images/debian/../../etc/passwd",
        "/images/debian//etc/passwd",
        "/first-stage/../../../etc/passwd",
        "/first-stage//etc/passwd",
        "/blobs/../../etc/passwd",
        "/../etc/passwd",
        "/r/debian/2/vmlinuz",
        "/r/nope/1/vmlinuz",
        "/images/debian/missing",
    ] {
        let (status, _, body) = curl(&[], &format!("{}{path}", h.base));
        assert_eq!(status, 404, "{path}");
        assert!(
            passwd.is_empty() || !body.windows(8).any(|w| passwd.starts_with(w)),
            "{path} leaked a file"
        );
    }
    let (status, _, _) = curl(
        &["-X", "POST", "-d", "x"],
        &format!("{}/r/debian/1/vmlinuz", h.base),
    );
    assert_eq!(status, 405);
    assert!(
        h.node.log_text().contains("refused path"),
        "refusals are logged"
    );
}

/// Also counted in `/metrics`: two integrity refusals, and the one client reached the kernel
/// and initrd stages of debian once each.
#[test]
fn a_file_changed_on_disk_is_refused_at_serve_time() {
    let h = setup("");
    let before = Metrics::fetch(&format!("{}/metrics", h.base));
    let kernel = content(1, 1_500_000);
    let url = format!("{}/r/debian/1/vmlinuz", h.base);
    assert_eq!(curl(&[], &url).2, kernel, "served intact first");
    let blob = h.site.blob(&kernel);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[700_000] ^= 0x01;
    fs::write(&blob, bytes).unwrap();
    let (status, _, body) = curl(&[], &url);
    assert_eq!(status, 500);
    assert!(
        !body
            .windows(64)
            .any(|w| kernel.windows(64).next() == Some(w)),
        "no kernel bytes served"
    );
    let (status, _, _) = curl(&["-r", "0-99"], &url);
    assert_eq!(status, 500, "not even a range of it");
    assert!(
        h.node
            .log_text()
            .contains("REFUSED, debian v1 vmlinuz failed its integrity check"),
        "{}",
        h.node.log_text()
    );
    // The other file of the release is still served.
    let (status, _, body) = curl(&[], &format!("{}/r/debian/1/initrd.img", h.base));
    assert_eq!((status, body), (200, content(2, 200_000)));
    let after = Metrics::fetch(&format!("{}/metrics", h.base));
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let http = [("protocol", "http")];
    assert_eq!(
        moved("netboot_integrity_refusals_total", &http),
        2.0,
        "{}",
        after.text
    );
    for stage in ["kernel", "initrd"] {
        assert_eq!(
            moved(
                "netboot_boot_stage_reached_total",
                &[("stage", stage), ("image", "debian")]
            ),
            1.0,
            "{stage}: {}",
            after.text
        );
    }
}

fn raw_request(base: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn pxelinux_machines_get_a_handoff_and_generated_configs() {
    let h = setup(
        "[machines]\n\"52:54:00:12:34:56\" = { image = \"debian\", loader = \"pxelinux\" }\n",
    );
    let (_, _, body) = curl(
        &[],
        &format!("{}/boot.ipxe?mac=52:54:00:12:34:56&arch=i386", h.base),
    );
    let script = String::from_utf8_lossy(&body);
    assert!(
        script.contains("set 209:string pxelinux.cfg/01-52-54-00-12-34-56"),
        "{script}"
    );
    assert!(
        script.contains(&format!("set 210:string {}/pxelinux/", h.base)),
        "{script}"
    );
    assert!(
        script.contains(&format!("chain {}/pxelinux/lpxelinux.0", h.base)),
        "{script}"
    );
    // The same machine under UEFI iPXE keeps the iPXE path: PXELINUX is BIOS only.
    let (_, _, body) = curl(
        &[],
        &format!("{}/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64", h.base),
    );
    assert!(
        String::from_utf8_lossy(&body).contains("kernel "),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let (status, _, body) = curl(
        &[],
        &format!("{}/pxelinux/pxelinux.cfg/01-52-54-00-12-34-56", h.base),
    );
    let cfg = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(cfg.contains("DEFAULT debian\n"), "{cfg}");
    assert!(
        cfg.contains(&format!(
            "  LINUX {}/r/debian/1/vmlinuz\n  INITRD {}/r/debian/1/initrd.img\n",
            h.base, h.base
        )),
        "{cfg}"
    );
    // Unknown machines get a menu from `default`; PXELINUX's other probes are 404s.
    let (_, _, body) = curl(&[], &format!("{}/pxelinux/pxelinux.cfg/default", h.base));
    assert!(
        String::from_utf8_lossy(&body).contains("DEFAULT local\nPROMPT 1"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = curl(&[], &format!("{}/pxelinux/pxelinux.cfg/0A000005", h.base));
    assert_eq!(status, 404);
}

#[test]
fn first_stage_programs_over_http_for_uefi_http_boot() {
    let local = tempfile::tempdir().unwrap();
    fs::write(local.path().join("arm64.efi"), content(9, 5000)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", local.path().join("link.efi")).unwrap();
    let site = LoopbackSite::new(&format!(
        "[boot]\nfirst_stage_dir = \"{}\"\n",
        local.path().display()
    ));
    let efi = site.file("ipxe.efi", &content(8, 900_000));
    site.publish(&["--name", "ipxe", "--file", &efi]);
    let node = site.start();
    let base = site.base_url();
    let (status, headers, body) = curl(&[], &format!("{base}/first-stage/ipxe.efi"));
    assert_eq!((status, body), (200, content(8, 900_000)));
    assert!(
        headers.contains("content-type: application/efi"),
        "{headers}"
    );
    // Missing from the release: the local directory, and the log says it is unverified.
    let (status, _, body) = curl(&[], &format!("{base}/first-stage/arm64.efi"));
    assert_eq!((status, body), (200, content(9, 5000)));
    let log = node.log_text();
    assert!(log.contains("WITHOUT verification"), "{log}");
    assert!(
        log.contains("local dir") && log.contains("(unverified)"),
        "{log}"
    );
    // Symlinks in the local directory are never followed.
    assert_eq!(curl(&[], &format!("{base}/first-stage/link.efi")).0, 404);
}

/// A client that reads a file slowly, on its own thread: at most `rate` bytes a second, in
/// reads of 16 KiB, each written to `out` at once. curl's `--limit-rate` was used before, but
/// it reads in bursts and loopback's receive buffer grows to 32 MiB, so a whole test file
/// could leave the node before the test acted on it "mid-transfer". Reading slowly with a
/// plain socket keeps the kernel from growing the window: the node is held at what its send
/// buffer and our small receive window take (a few MiB).
struct SlowClient {
    out: std::path::PathBuf,
    done: std::thread::JoinHandle<std::io::Result<bool>>,
}

impl SlowClient {
    fn get(addr: &str, path: &str, out: std::path::PathBuf, rate: u64) -> Self {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to the node");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("send request");
        let file = out.clone();
        let done = std::thread::spawn(move || {
            let mut sink = fs::File::create(&file)?;
            let mut head = Vec::new();
            let mut buf = vec![0u8; 16 << 10];
            // The head, byte by byte: it must not eat into the body.
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut buf[..1])? == 0 {
                    return Ok(false);
                }
                head.push(buf[0]);
            }
            let head = String::from_utf8_lossy(&head).to_lowercase();
            let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                return Ok(false);
            };
            let pause = std::time::Duration::from_secs_f64(buf.len() as f64 / rate as f64);
            let mut got = 0u64;
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    // A reset is how a cut transfer may look from here.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) => return Err(e),
                };
                sink.write_all(&buf[..n])?;
                got += n as u64;
                std::thread::sleep(pause);
            }
            Ok(got == len)
        });
        SlowClient { out, done }
    }

    fn received(&self) -> u64 {
        fs::metadata(&self.out).map(|m| m.len()).unwrap_or(0)
    }

    /// Whether the whole body (as long as Content-Length said) arrived.
    fn finish(self) -> bool {
        self.done
            .join()
            .expect("slow client thread")
            .expect("slow client I/O")
    }
}

/// A node serving one `len`-byte file as release `big`, and a [`SlowClient`] fetching it.
fn slow_download(
    seed: u64,
    len: usize,
    rate: u64,
) -> (LoopbackSite, NodeProcess, Vec<u8>, SlowClient) {
    let site = LoopbackSite::new("");
    let data = content(seed, len);
    let f = site.file("big.img", &data);
    site.publish(&["--name", "big", "--file", &f]);
    let node = site.start();
    let out = site.dir().join("received");
    let addr = site
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let client = SlowClient::get(&addr, "/r/big/1/big.img", out, rate);
    (site, node, data, client)
}

/// `/blobs/<hash>` serves only bytes a servable release vouches for: once the release has
/// expired its blob is 404, also after a restart (issue 11, item 4).
#[test]
fn blobs_of_an_expired_release_are_not_served_also_after_restart() {
    let site = LoopbackSite::new("");
    let data = content(7, 50_000);
    let f = site.file("tool.bin", &data);
    site.publish(&["--name", "tool", "--expires", "3s", "--file", &f]);
    let url = format!("{}/blobs/{}", site.base_url(), blake3::hash(&data).to_hex());
    let node = site.start();
    let (status, _, body) = curl(&[], &url);
    assert_eq!((status, body == data), (200, true), "before it expires");
    wait_until(
        "the release to expire",
        std::time::Duration::from_secs(10),
        &|| node.log_text(),
        || curl(&[], &url).0 == 404,
    );
    drop(node);
    assert!(site.blob(&data).exists(), "the blob is still on disk");
    let node = site.start();
    let (status, _, body) = curl(&[], &url);
    assert_eq!(
        status,
        404,
        "after restart: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(body.len() < 200 && !node.log_text().contains("sent 50000 bytes"));
}

/// A blob overwritten in place while a client downloads it: every byte the client got is
/// the original, the transfer is cut short, and the log calls it an integrity refusal
/// (issue 11, item 6).
#[test]
fn a_blob_overwritten_during_a_transfer_never_reaches_the_client() {
    use std::os::unix::fs::FileExt;
    let len = 32 << 20;
    let (site, node, data, client) = slow_download(8, len, 8 << 20);
    wait_until(
        "the first megabyte to arrive",
        std::time::Duration::from_secs(20),
        &|| node.log_text(),
        || client.received() >= 1 << 20,
    );
    // Well past what the node has read so far (1 MB out plus socket buffers), in place.
    let blob = fs::OpenOptions::new()
        .write(true)
        .open(site.blob(&data))
        .expect("open blob for writing");
    let changed = vec![0x5a; len - (20 << 20)];
    blob.write_all_at(&changed, 20 << 20).unwrap();
    drop(blob);
    let out = client.out.clone();
    let complete = client.finish();
    let got = fs::read(&out).unwrap();
    assert!(!complete, "the client should see a cut transfer");
    assert!(got.len() < len, "the whole file went out");
    assert!(got.len() >= 1 << 20);
    let first_bad = got.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(first_bad, None, "the client received a changed byte");
    wait_until(
        "the integrity refusal in the log",
        std::time::Duration::from_secs(5),
        &|| node.log_text(),
        || node.log_text().contains("REFUSED by the integrity check"),
    );
}

/// The node under a 1024-file limit while 1,100 connections from 50 other addresses sit in
/// an unfinished request head (slowloris): a real client still gets its files over HTTP and
/// TFTP, the held connections are closed by the header timeout, and an idle keep-alive
/// connection is closed by the idle timeout (issue 11, item 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_do_not_lock_out_real_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = LoopbackSite::new("header_timeout_secs = 3\nidle_timeout_secs = 2\n");
    let kernel = content(1, 1_500_000);
    let k = site.file("vmlinuz", &kernel);
    site.publish(&["--name", "debian", "--file", &k]);
    let ipxe = content(9, 200_000);
    let i = site.file("ipxe.efi", &ipxe);
    site.publish(&["--name", "ipxe", "--file", &i]);
    let node = NodeProcess::start_with_nofile(&site.config, 1024);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", site.http_port).parse().unwrap();

    let mut held = Vec::new();
    for n in 0..1100u32 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("127.0.1.{}:0", 1 + n % 50).parse().unwrap())
            .unwrap();
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(std::time::Duration::from_secs(2), sock.connect(addr)).await
        else {
            continue; // the listen backlog was full: that is a refusal too
        };
        let _ = stream
            .write_all(b"GET /images/debian/vmlinuz HTTP/1.1\r\nHost: x\r\n")
            .await;
        held.push(stream);
    }
    assert!(
        held.len() > 1000,
        "only {} connections were accepted",
        held.len()
    );

    // While they are held: a real client over HTTP, and over TFTP (which needs descriptors).
    let base = site.base_url();
    let http = tokio::task::spawn_blocking(move || {
        curl(
            &["--max-time", "10"],
            &format!("{base}/images/debian/vmlinuz"),
        )
    });
    let (status, _, body) = http.await.unwrap();
    assert_eq!((status, body == kernel), (200, true), "{}", node.log_text());
    let out = site.dir().join("ipxe.out");
    let tftp = Command::new("curl")
        .args(["-s", "--max-time", "10", "-o"])
        .arg(&out)
        .arg(format!("tftp://127.0.0.1:{}/ipxe.efi", site.tftp_port))
        .status()
        .expect("curl");
    assert!(
        tftp.success(),
        "TFTP failed during the flood\n{}",
        node.log_text()
    );
    assert_eq!(fs::read(&out).unwrap(), ipxe);

    // Every held connection is closed by the node: made room for others, or timed out
    // in its header (3 s).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    for stream in &mut held {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue, // a 408 before the close
                Err(_) => panic!("a held connection is still open after 10 s"),
            }
        }
    }
    let log = node.log_text();
    assert!(!log.contains("Too many open files"), "{log}");

    // Idle keep-alive: one request, then silence; closed after idle_timeout_secs (2 s).
    let mut keep = tokio::net::TcpStream::connect(addr).await.unwrap();
    keep.write_all(b"GET /boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = keep.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match keep.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "idle keep-alive connection not closed within 10 s"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500));
}

/// SIGTERM during a download: the log says the node stopped the transfer, not that the
/// client went away (issue 11, item 9).
#[test]
fn shutdown_logs_that_the_node_stopped_transfers() {
    let (_site, node, _data, client) = slow_download(10, 8 << 20, 1 << 20);
    wait_until(
        "the download to start",
        std::time::Duration::from_secs(20),
        &|| node.log_text(),
        || client.received() > 0,
    );
    let killed = Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until(
        "the node to log its shutdown",
        std::time::Duration::from_secs(20),
        &|| node.log_text(),
        || node.log_text().contains("http: closed"),
    );
    assert!(
        !client.finish(),
        "the whole file arrived before the node stopped"
    );
    let log = node.log_text();
    assert!(
        log.contains("GET /r/big/1/big.img: transfer stopped by the node (shutting down) after"),
        "{log}"
    );
    assert!(!log.contains("client went away"), "{log}");
}

#[test]
fn a_damaged_blob_index_stops_the_node_with_one_line_and_repair_brings_every_release_back() {
    let Http { site, node, base } = setup("");
    drop(node);
    let db = site.dir().join("data/blobs/blobs.db");
    // Everything after redb's header page overwritten: its trees are garbage.
    let mut bytes = fs::read(&db).unwrap();
    bytes[4096..].fill(0x5a);
    fs::write(&db, &bytes).unwrap();
    let out = netboot_tests::run_bounded(
        Command::new(netboot_tests::netboot_bin())
            .args(["node", "--config"])
            .arg(&site.config),
        std::time::Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains(&db.display().to_string()) && errors[0].contains("netboot repair"),
        "{err}"
    );

    let out = netboot_tests::run(
        netboot_tests::netboot()
            .args(["repair", "--config"])
            .arg(&site.config),
        true,
    );
    let report = netboot_tests::stdout(&out);
    assert!(
        report.contains("RESTORED debian v1") && report.contains("RESTORED rescue v1"),
        "{report}"
    );
    let _node = site.start();
    for (path, data) in [
        ("/r/debian/1/vmlinuz", content(1, 1_500_000)),
        ("/r/debian/1/initrd.img", content(2, 200_000)),
        ("/r/rescue/1/rescue.iso", content(3, 300_000)),
    ] {
        let (status, _, body) = curl(&[], &format!("{base}{path}"));
        assert_eq!(status, 200, "{path}");
        assert!(body == data, "{path} serves its signed bytes again");
    }
}
