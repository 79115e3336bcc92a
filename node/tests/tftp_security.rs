//! Path traversal and symlink escapes: each gets a TFTP error and no data. A flood of
//! requests that are never acknowledged holds only its host's few slots.

mod common;

use std::time::Duration;

use common::{curl_cmd, logcap, run, write_file, RawClient, Rx, TestServer};
use netboot_node::tftp::TftpConfig;

struct Setup {
    dir: tempfile::TempDir,
    _outside: tempfile::TempDir,
    server: TestServer,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write_file(outside.path(), "secret", 100, 9);
    write_file(dir.path(), "a/ok.bin", 100, 10);
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("a/outdir")).unwrap();
    std::fs::create_dir(dir.path().join("subdir")).unwrap();
    let server = TestServer::start(dir.path(), TftpConfig::default()).await;
    Setup {
        dir,
        _outside: outside,
        server,
    }
}

/// Sends an RRQ and returns the error code; panics if anything but one ERROR
/// arrives or if the refusal was not logged exactly once with a reason.
async fn refused_with(server: &TestServer, name: &str) -> u16 {
    let mut c = RawClient::new(server.addr).await;
    c.rrq(name, &[("tsize", "0"), ("blksize", "1468")]).await;
    let code = match c.expect(Duration::from_secs(5)).await {
        Rx::Error { code, .. } => code,
        other => panic!("{name:?}: expected ERROR, got {other:?}"),
    };
    assert_eq!(
        c.recv(Duration::from_millis(200)).await,
        None,
        "{name:?}: data after the error"
    );
    let client = format!("client={}", c.sock.local_addr().unwrap());
    let lines = logcap::wait_for(
        &["tftp request refused", &client, "reason="],
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(lines.len(), 1, "{name:?}: {lines:?}");
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_symlinks_are_refused() {
    let s = setup().await;
    let cases: &[(&str, u16)] = &[
        ("../etc/passwd", 2),
        ("a/../../x", 2),
        ("..\\..\\etc\\passwd", 2),
        ("//etc/passwd", 2),
        ("a//ok.bin", 2),
        ("./a/ok.bin", 2),
        // One leading slash means "relative to the root", where there is no etc/.
        ("/etc/passwd", 1),
        ("escape", 2),
        ("a/outdir/secret", 2),
        ("subdir", 2),
        ("missing", 1),
        ("", 1),
    ];
    for (name, code) in cases {
        assert_eq!(refused_with(&s.server, name).await, *code, "{name:?}");
    }
    // The reasons name the problem for the sysadmin.
    assert!(!logcap::lines_with(&[
        "\"../etc/passwd\"",
        "reason='..' component (path traversal)"
    ])
    .is_empty());
    assert!(
        !logcap::lines_with(&["\"escape\"", "reason=access violation: symlink in path"]).is_empty()
    );
    assert!(!logcap::lines_with(&["\"missing\"", "reason=file not found"]).is_empty());
    // And the server still serves the legitimate file.
    let mut c = RawClient::new(s.server.addr).await;
    assert_eq!(c.fetch("a/ok.bin", 512, 1).await.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_nothing_outside_the_root() {
    let s = setup().await;
    for name in [
        "../etc/passwd",
        "escape",
        "a/../../etc/passwd",
        "/etc/passwd",
    ] {
        let out = s.dir.path().join("curl-out");
        let _ = std::fs::remove_file(&out);
        let mut cmd = curl_cmd(s.server.port(), name, None, &out);
        // Without this curl would resolve the dot segments itself.
        cmd.arg("--path-as-is");
        let o = run(cmd).await;
        assert!(!o.status.success(), "{name}: curl succeeded");
        assert_eq!(
            std::fs::read(&out).unwrap_or_default().len(),
            0,
            "{name}: got data"
        );
    }
}

/// 1,100 read requests from one host asking for `timeout=255`, none ever acknowledged
/// (issue 11): the host gets its per-client share of transfers and "busy" for the rest,
/// the 255 s timeout is declined, and a real client on another address is served while
/// those transfers still wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unacknowledged_requests_does_not_lock_out_real_clients() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "ipxe.efi", 300_000, 21);
    let config = TftpConfig::default();
    let per_client = config.max_transfers_per_client;
    let server = TestServer::start(dir.path(), config).await;

    let mut flood = Vec::new();
    for _ in 0..1100 {
        let c = RawClient::new_from(server.addr, "127.0.0.2:0").await;
        c.rrq("ipxe.efi", &[("timeout", "255"), ("tsize", "0")])
            .await;
        flood.push(c);
    }
    let (mut held, mut busy) = (0, 0);
    for c in &mut flood {
        match c.expect(Duration::from_secs(5)).await {
            Rx::Oack(opts) => {
                assert!(
                    !opts.iter().any(|(n, _)| n == "timeout"),
                    "a 255 s timeout was acknowledged: {opts:?}"
                );
                held += 1;
            }
            Rx::Error { code: 0, message } if message.contains("busy") => busy += 1,
            other => panic!("flood request: unexpected {other:?}"),
        }
    }
    assert_eq!((held, busy), (per_client, 1100 - per_client));

    // The flood's transfers are still waiting for their first ACK; a real client gets
    // the whole file meanwhile.
    let out = dir.path().join("fetched");
    let got = common::curl_fetch(server.port(), "ipxe.efi", Some(1468), &out).await;
    assert_eq!(got, want);
    assert!(
        logcap::lines_with(&["too many concurrent transfers"]).is_empty(),
        "the global limit was reached"
    );
}

/// A release file served through `integrity::VerifiedFiles`, as the node's store source
/// does.
struct Verifying {
    path: std::path::PathBuf,
    hash: blake3::Hash,
    size: u64,
    files: netboot_node::integrity::VerifiedFiles,
}

impl netboot_node::tftp::TftpSource for Verifying {
    fn open(
        &self,
        _path: &str,
        _client: std::net::SocketAddr,
    ) -> Result<Box<dyn netboot_node::tftp::TftpFile>, netboot_node::tftp::OpenError> {
        let file = self
            .files
            .open(&self.path, &self.hash, self.size)
            .map_err(|e| netboot_node::tftp::OpenError::AccessViolation(e.to_string()))?;
        Ok(Box::new(file))
    }
}

/// A file overwritten in place while a client fetches it over TFTP: the client gets an
/// ERROR instead of the changed blocks, and every byte it did get is the original (issue
/// 11, item 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_overwritten_during_a_transfer_is_cut_before_a_changed_byte() {
    use std::os::unix::fs::FileExt;
    logcap::install();
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "image", 2_000_000, 22);
    let path = dir.path().join("image");
    let source = std::sync::Arc::new(Verifying {
        hash: blake3::hash(&want),
        size: want.len() as u64,
        path: path.clone(),
        files: Default::default(),
    });
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let server = tokio::spawn(netboot_node::tftp::serve(
        socket,
        source,
        common::quick_config(),
    ));

    let mut c = RawClient::new(addr).await;
    c.rrq("image", &[("blksize", "1468")]).await;
    assert!(matches!(
        c.expect(Duration::from_secs(5)).await,
        Rx::Oack(_)
    ));
    c.ack(0).await;
    let mut got = Vec::new();
    let ended = loop {
        match c.expect(Duration::from_secs(5)).await {
            Rx::Data { block, payload } => {
                got.extend_from_slice(&payload);
                if block == 100 {
                    // Far beyond the node's read-ahead (256 KiB) at this point.
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.write_all_at(&vec![0x5a; 1_000_000], 1_000_000).unwrap();
                }
                if payload.len() < 1468 {
                    break None;
                }
                c.ack(block).await;
            }
            Rx::Error { message, .. } => break Some(message),
            other => panic!("unexpected {other:?}"),
        }
    };
    // The node logs the transfer's end after the client has the ERROR; wait for the
    // line before stopping the server, or the abort can win the race.
    let refused =
        logcap::wait_for(&["REFUSED by the integrity check"], Duration::from_secs(5)).await;
    server.abort();
    assert_eq!(ended.as_deref(), Some("file failed its integrity check"));
    assert!(got.len() < want.len() && got.len() >= 100 * 1468);
    assert!(
        got[..] == want[..got.len()],
        "the client received a changed byte"
    );
    assert!(!refused.is_empty(), "no REFUSED line was logged");
}

/// A flood of read requests nobody acknowledges, from 96 addresses, each under the
/// per-client cap, so together they fill every transfer slot (issue 11, item 2). New
/// requests take the slots of the oldest never-acknowledged transfers: no request of the
/// flood is refused, a real client that arrives while the table is full gets the whole
/// file, and a transfer already in progress when the flood began is never ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_addresses_makes_room_for_real_clients() {
    const WAIT: Duration = Duration::from_secs(10);
    const HOSTS: usize = 96;
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "ipxe.efi", 300_000, 23);
    let config = TftpConfig {
        // The in-progress client below waits out the flood without acknowledging; on a
        // loaded machine that may take long enough to look like a dead client.
        max_retries: 10,
        ..TftpConfig::default()
    };
    let (slots, per_host) = (config.max_transfers, config.max_transfers_per_client - 1);
    let server = TestServer::start(dir.path(), config).await;

    // In progress before the flood: it has acknowledged the OACK and holds DATA 1.
    let mut early = RawClient::new(server.addr).await;
    early.rrq("ipxe.efi", &[("blksize", "1468")]).await;
    assert!(matches!(early.expect(WAIT).await, Rx::Oack(_)));
    early.ack(0).await;
    let mut early_got = match early.expect(WAIT).await {
        Rx::Data { block: 1, payload } => payload,
        other => panic!("expected DATA 1, got {other:?}"),
    };

    let mut flood = Vec::new();
    for host in 1..=HOSTS {
        for _ in 0..per_host {
            let c = RawClient::new_from(server.addr, &format!("127.0.1.{host}:0")).await;
            c.rrq("ipxe.efi", &[("timeout", "255"), ("tsize", "0")])
                .await;
            flood.push(c);
        }
    }
    assert!(flood.len() > slots, "the flood does not fill the table");
    // Every one that fitted, or was later ended, had its OACK; none was told "busy".
    for c in &mut flood {
        if let Some(Rx::Error { message, .. }) = c.recv(Duration::from_millis(200)).await {
            panic!("a flood request was refused: {message:?}");
        }
    }
    // The early client holds one slot, the flood the rest; everything beyond was made
    // room for, each logged at debug.
    let ended = flood.len() - (slots - 1);
    let lines = logcap::wait_count(
        &["tftp transfer ended to make room", "client=127.0.1."],
        ended,
        WAIT,
    )
    .await;
    assert_eq!(lines.len(), ended, "transfers ended to make room");
    assert!(lines.iter().all(|l| l.starts_with("DEBUG")), "{lines:?}");
    let summary = logcap::lines_with(&["ended the oldest transfers never acknowledged"]);
    assert!(
        !summary.is_empty() && summary.iter().all(|l| l.starts_with("INFO")),
        "{summary:?}"
    );

    // The table is full of waiting flood transfers; a real client is served anyway.
    let out = dir.path().join("fetched");
    let got = common::curl_fetch(server.port(), "ipxe.efi", Some(1468), &out).await;
    assert_eq!(got, want);

    // And the transfer in progress since before the flood was kept: it ends complete.
    let mut expected = 1u16;
    loop {
        early.ack(expected).await;
        expected += 1;
        let payload = loop {
            match early.expect(WAIT).await {
                Rx::Data { block, payload } if block == expected => break payload,
                // DATA resent while we kept it waiting.
                Rx::Data { block, .. } if block < expected => continue,
                other => panic!("early client: expected DATA {expected}, got {other:?}"),
            }
        };
        early_got.extend_from_slice(&payload);
        if payload.len() < 1468 {
            break;
        }
    }
    early.ack(expected).await;
    assert_eq!(early_got, want);
    assert!(
        logcap::lines_with(&["too many concurrent transfers"]).is_empty(),
        "a request was refused"
    );
}
