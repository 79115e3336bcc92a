//! Protocol behaviour checked packet by packet with a raw UDP client.

mod common;

use std::time::{Duration, Instant};

use common::{assert_same, logcap, quick_config, write_file, RawClient, Rx, TestServer};
use netboot_node::tftp::TftpConfig;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(250);

fn data(rx: Rx) -> (u16, Vec<u8>) {
    match rx {
        Rx::Data { block, payload } => (block, payload),
        other => panic!("expected DATA, got {other:?}"),
    }
}

async fn expect_blocks(c: &mut RawClient, blocks: &[u16]) {
    for &want in blocks {
        let (got, _) = data(c.expect(WAIT).await);
        assert_eq!(got, want);
    }
}

/// Long timeouts: these tests must see exactly the packets the protocol
/// mandates, with no retransmission in between.
fn patient_config() -> TftpConfig {
    TftpConfig {
        default_timeout: Duration::from_secs(3),
        ..TftpConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_options_means_no_oack_and_lockstep() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "f", 1000, 1);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    c.rrq("f", &[]).await;
    let (b, p1) = data(c.expect(WAIT).await);
    assert_eq!((b, p1.len()), (1, 512));
    assert_ne!(c.tid, Some(server.addr), "transfer must use a fresh port");
    c.ack(1).await;
    let (b, p2) = data(c.expect(WAIT).await);
    assert_eq!((b, p2.len()), (2, 488));
    c.ack(2).await;
    assert_eq!(c.recv(QUIET).await, None);
    assert_same(&[p1, p2].concat(), &want, "lock-step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ack_does_not_trigger_resend() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f", 512 * 4 + 1, 2);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    c.rrq("f", &[]).await;
    expect_blocks(&mut c, &[1]).await;
    c.ack(1).await;
    expect_blocks(&mut c, &[2]).await;
    // Sorcerer's Apprentice: a repeated ACK 1 must not produce a second DATA 2.
    c.ack(1).await;
    c.ack(1).await;
    assert_eq!(c.recv(QUIET).await, None);
    c.ack(2).await;
    expect_blocks(&mut c, &[3]).await;
    assert_eq!(c.recv(QUIET).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oack_negotiation_clamps_and_reports_tsize() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f", 123_456, 3);
    let config = TftpConfig {
        max_blksize: 1468,
        max_windowsize: 8,
        ..patient_config()
    };
    let server = TestServer::start(dir.path(), config).await;
    let mut c = RawClient::new(server.addr).await;
    c.rrq(
        "f",
        &[
            ("TSIZE", "0"),
            ("blksize", "9000"),
            ("windowsize", "100"),
            ("timeout", "2"),
            ("foo", "bar"),
        ],
    )
    .await;
    let Rx::Oack(opts) = c.expect(WAIT).await else {
        panic!("expected OACK")
    };
    let want: Vec<(String, String)> = [
        ("tsize", "123456"),
        ("blksize", "1468"),
        ("windowsize", "8"),
        ("timeout", "2"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(opts, want);
    c.ack(0).await;
    for b in 1..=8u16 {
        let (got, p) = data(c.expect(WAIT).await);
        assert_eq!((got, p.len()), (b, 1468));
    }
    assert_eq!(c.recv(QUIET).await, None, "window of 8 must stop at 8");
    c.error(0, "enough").await;
    let lines = logcap::wait_for(
        &[
            "tftp transfer",
            &format!("client={}", c.sock.local_addr().unwrap()),
            "client aborted",
        ],
        WAIT,
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
}

/// RFC 7440: an ACK inside the window means "got everything up to here";
/// the next window starts right after it. Older ACKs are ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_ack_mid_window_resends_from_next_block() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "f", 512 * 20 + 100, 4);
    let config = TftpConfig {
        default_timeout: Duration::from_millis(600),
        ..TftpConfig::default()
    };
    let server = TestServer::start(dir.path(), config).await;
    let mut c = RawClient::new(server.addr).await;
    c.rrq("f", &[("windowsize", "4")]).await;
    assert!(matches!(c.expect(WAIT).await, Rx::Oack(_)));
    c.ack(0).await;
    expect_blocks(&mut c, &[1, 2, 3, 4]).await;
    // Pretend 3 was lost: ACK 2 -> server resends 3..6.
    c.ack(2).await;
    expect_blocks(&mut c, &[3, 4, 5, 6]).await;
    // Stale ACKs (before and at the acknowledged point) change nothing.
    c.ack(1).await;
    c.ack(2).await;
    assert_eq!(c.recv(Duration::from_millis(200)).await, None);
    c.ack(6).await;
    expect_blocks(&mut c, &[7, 8, 9, 10]).await;
    // No ACK at all: after the timeout the whole window comes again.
    let t = Instant::now();
    expect_blocks(&mut c, &[7, 8, 9, 10]).await;
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "retransmitted too early: {:?}",
        t.elapsed()
    );
    // Finish normally, ACKing the last block of each window, and compare bytes.
    let mut got = Vec::new();
    got.extend_from_slice(&want[..512 * 10]);
    c.ack(10).await;
    let mut expected = 11u16;
    loop {
        let (b, p) = data(c.expect(WAIT).await);
        assert_eq!(b, expected);
        got.extend_from_slice(&p);
        let last = p.len() < 512;
        if last || (b - 10) % 4 == 0 {
            c.ack(b).await;
        }
        if last {
            break;
        }
        expected += 1;
    }
    assert_same(&got, &want, "windowed");
    assert_eq!(c.recv(QUIET).await, None);
}

/// blksize 8 reaches the wrap with a small file: 65536+ blocks. Windows of 64
/// straddle 65535 -> 0, so ACK numbers are mapped across the wrap too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_numbers_wrap_past_65535() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "f", 8 * 70_000 + 3, 5);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    let got = c.fetch("f", 8, 64).await;
    assert_same(&got, &want, "wrap w64");
}

/// Mid-window ACK right across the wrap: blocks 65534, 65535, 0, 1 in one window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_window_ack_across_the_wrap() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f", 8 * 65_540, 6);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    c.rrq("f", &[("blksize", "8"), ("windowsize", "2")]).await;
    assert!(matches!(c.expect(WAIT).await, Rx::Oack(_)));
    c.ack(0).await;
    // Move fast to just before the wrap, acknowledging each window of two.
    let mut block: u16 = 0;
    while block != 65532 {
        let (b1, _) = data(c.expect(WAIT).await);
        let (b2, _) = data(c.expect(WAIT).await);
        assert_eq!((b1, b2), (block.wrapping_add(1), block.wrapping_add(2)));
        block = b2;
        c.ack(block).await;
    }
    expect_blocks(&mut c, &[65533, 65534]).await;
    c.ack(65534).await;
    expect_blocks(&mut c, &[65535, 0]).await;
    // ACK only 65535: resend must start at 0.
    c.ack(65535).await;
    expect_blocks(&mut c, &[0, 1]).await;
    c.ack(1).await;
    expect_blocks(&mut c, &[2, 3]).await;
    c.error(0, "done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uefi_tsize_probe_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "bootx64.efi", 4321, 7);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    c.rrq("bootx64.efi", &[("tsize", "0"), ("blksize", "1468")])
        .await;
    let Rx::Oack(opts) = c.expect(WAIT).await else {
        panic!("expected OACK")
    };
    assert!(opts.contains(&("tsize".into(), "4321".into())));
    c.error(8, "User aborted the transfer").await;
    assert_eq!(c.recv(QUIET).await, None);
    let client = format!("client={}", c.sock.local_addr().unwrap());
    let lines = logcap::wait_for(&["tftp transfer", &client], WAIT).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("DEBUG"), "{}", lines[0]);
    assert!(lines[0].contains("option probe"), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_requests_and_mail_mode_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f", 10, 8);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    c.send_main(b"\x00\x02upload.bin\x00octet\x00").await;
    match c.expect(WAIT).await {
        Rx::Error { code: 2, message } => assert!(message.contains("read-only"), "{message}"),
        other => panic!("expected ERROR 2, got {other:?}"),
    }
    let mut c = RawClient::new(server.addr).await;
    c.send_main(b"\x00\x01f\x00mail\x00").await;
    assert!(matches!(c.expect(WAIT).await, Rx::Error { code: 4, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netascii_is_served_unconverted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.txt"), b"line1\nline2\r\n").unwrap();
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    c.send_main(b"\x00\x01t.txt\x00NetASCII\x00").await;
    let (b, p) = data(c.expect(WAIT).await);
    assert_eq!((b, p.as_slice()), (1, &b"line1\nline2\r\n"[..]));
    c.ack(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_do_not_disturb_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "f", 3000, 9);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let mut c = RawClient::new(server.addr).await;
    // Dropped silently: empty, 1 byte, unknown opcode, stray ACK/DATA/ERROR.
    for junk in [
        &b""[..],
        b"\x00",
        b"\x00\x09abc",
        b"\xff\xff",
        b"\x00\x04\x00\x01",
        b"\x00\x03\x00\x01xx",
        b"\x00\x05\x00\x00x\x00",
    ] {
        c.send_main(junk).await;
    }
    assert_eq!(c.recv(QUIET).await, None);
    // Request opcode with a broken body: ERROR 4.
    for bad in [
        &b"\x00\x01"[..],
        b"\x00\x01file",
        b"\x00\x01file\x00",
        b"\x00\x01f\x00octet\x00blksize\x00",
        b"\x00\x01f\x00bogus\x00",
    ] {
        let mut c = RawClient::new(server.addr).await;
        c.send_main(bad).await;
        assert!(
            matches!(c.expect(WAIT).await, Rx::Error { code: 4, .. }),
            "{bad:?}"
        );
    }
    // A valid request afterwards still works, on the same client socket too.
    let got = c.fetch("f", 1024, 2).await;
    assert_same(&got, &want, "after junk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmitted_rrq_does_not_start_a_second_transfer() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f", 2000, 10);
    let server = TestServer::start(dir.path(), patient_config()).await;
    let c = RawClient::new(server.addr).await;
    c.rrq("f", &[]).await;
    c.rrq("f", &[]).await;
    let mut from = Vec::new();
    let mut buf = [0u8; 600];
    while let Ok(Ok((_, addr))) = tokio::time::timeout(QUIET, c.sock.recv_from(&mut buf)).await {
        from.push(addr);
    }
    assert_eq!(
        from.len(),
        1,
        "expected one DATA 1 from one transfer, got {from:?}"
    );
}

/// A client that stops ACKing: the server retries with backoff, gives up, logs
/// it, and meanwhile keeps serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_times_out_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "f", 50_000, 11);
    let config = TftpConfig {
        default_timeout: Duration::from_millis(100),
        max_timeout: Duration::from_millis(200),
        max_retries: 3,
        ..TftpConfig::default()
    };
    let server = TestServer::start(dir.path(), config).await;
    let mut silent = RawClient::new(server.addr).await;
    silent
        .rrq("f", &[("blksize", "1024"), ("windowsize", "2")])
        .await;
    assert!(matches!(silent.expect(WAIT).await, Rx::Oack(_)));
    silent.ack(0).await;

    // Someone else downloads while the silent one is being retried.
    let mut other = RawClient::new(server.addr).await;
    assert_same(&other.fetch("f", 512, 1).await, &want, "concurrent client");

    // Original window + 3 retransmissions of blocks 1,2, then nothing.
    let start = Instant::now();
    let mut blocks = Vec::new();
    while let Some(rx) = silent.recv(Duration::from_millis(800)).await {
        blocks.push(data(rx).0);
    }
    assert_eq!(blocks, [1, 2, 1, 2, 1, 2, 1, 2]);
    // 100 + 200 + 200 + 200 ms of waiting, minus what already passed.
    assert!(start.elapsed() < Duration::from_secs(3));
    let client = format!("client={}", silent.sock.local_addr().unwrap());
    let lines = logcap::wait_for(
        &["tftp transfer", &client, "timed out after 3 retries"],
        WAIT,
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("INFO"), "{}", lines[0]);

    let mut after = RawClient::new(server.addr).await;
    assert_same(&after.fetch("f", 1468, 4).await, &want, "after timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_server_refuses_beyond_max_transfers() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f", 10_000, 12);
    let config = TftpConfig {
        max_transfers: 1,
        ..patient_config()
    };
    let server = TestServer::start(dir.path(), config).await;
    let mut first = RawClient::new(server.addr).await;
    first.rrq("f", &[]).await;
    data(first.expect(WAIT).await);
    // Acknowledged: in progress, so a new request may not take its slot.
    first.ack(1).await;
    assert_eq!(data(first.expect(WAIT).await).0, 2);
    let mut second = RawClient::new(server.addr).await;
    second.rrq("f", &[]).await;
    assert!(matches!(
        second.expect(WAIT).await,
        Rx::Error { code: 0, .. }
    ));
    first.error(0, "bye").await;
    // The slot is released once the first transfer has ended.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = RawClient::new(server.addr).await;
    assert_eq!(third.fetch("f", 512, 4).await.len(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_ipv6_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "f", 5000, 13);
    let server = TestServer::start_on("[::1]:0", dir.path(), quick_config()).await;
    let mut c = RawClient::new(server.addr).await;
    assert_same(&c.fetch("f", 1468, 2).await, &want, "ipv6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_waits_for_running_transfers() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "f", 3000, 14);
    let server = TestServer::start(dir.path(), quick_config()).await;
    let addr = server.addr;
    let mut c = RawClient::new(addr).await;
    c.rrq("f", &[]).await;
    data(c.expect(WAIT).await);
    // The transfer is left hanging: shutdown returns once it has timed out.
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown hung");
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "did not wait for the transfer"
    );
    let mut late = RawClient::new(addr).await;
    late.rrq("f", &[]).await;
    assert_eq!(
        late.recv(QUIET).await,
        None,
        "still answering after shutdown"
    );
}
