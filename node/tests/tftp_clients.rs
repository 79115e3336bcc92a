//! Downloads with real TFTP clients (curl, atftp) against the server on loopback.
//! A missing client binary fails the test with the package to install.

mod common;

use std::time::Duration;

use common::{assert_same, atftp_fetch, curl_fetch, logcap, write_file, TestServer};
use netboot_node::tftp::TftpConfig;

const MB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_blksize_default_1468_8192() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "boot/curl.bin", 3 * MB + 123, 1);
    let server = TestServer::start(dir.path(), TftpConfig::default()).await;
    for blksize in [None, Some(1468), Some(8192)] {
        let out = dir.path().join(format!("out-{blksize:?}"));
        let got = curl_fetch(server.port(), "boot/curl.bin", blksize, &out).await;
        assert_same(&got, &want, &format!("curl blksize {blksize:?}"));
    }
    // One info line per transfer, naming the outcome and the negotiated size.
    let lines = logcap::wait_for(
        &["tftp transfer", "\"boot/curl.bin\"", "blksize=8192"],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("INFO"), "{}", lines[0]);
    assert!(lines[0].contains("outcome=complete"), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!("bytes={}", want.len())),
        "{}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_windowsize_and_blksize() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "atftp.bin", 2 * MB + 7, 2);
    let server = TestServer::start(dir.path(), TftpConfig::default()).await;
    let cases: [&[&str]; 4] = [
        &["windowsize 16"],
        &["blksize 1468"],
        &["blksize 1468", "windowsize 16"],
        &["blksize 8192", "windowsize 64", "tsize enable"],
    ];
    for (i, opts) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out-{i}"));
        let got = atftp_fetch(server.port(), "atftp.bin", opts, &out).await;
        assert_same(&got, &want, &format!("atftp {opts:?}"));
    }
    let lines = logcap::wait_for(
        &[
            "tftp transfer",
            "\"atftp.bin\"",
            "windowsize=16",
            "blksize=1468",
        ],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("outcome=complete"), "{}", lines[0]);
}

/// 65536 blocks of 512 plus a partial one: block numbers wrap past 65535.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_number_wraps_with_real_clients() {
    let dir = tempfile::tempdir().unwrap();
    let len = 65_536 * 512 + 777;
    let want = write_file(dir.path(), "big.bin", len, 3);
    let server = TestServer::start(dir.path(), TftpConfig::default()).await;

    let out = dir.path().join("out-curl");
    let got = curl_fetch(server.port(), "big.bin", Some(512), &out).await;
    assert_same(&got, &want, "curl wrap");

    let out = dir.path().join("out-atftp");
    let got = atftp_fetch(
        server.port(),
        "big.bin",
        &["blksize 512", "windowsize 16"],
        &out,
    )
    .await;
    assert_same(&got, &want, "atftp wrap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "empty", 0, 0);
    let server = TestServer::start(dir.path(), TftpConfig::default()).await;

    // curl only creates its output file once data arrives; success + no bytes is the check.
    let out = dir.path().join("out-curl");
    let o = common::run(common::curl_cmd(server.port(), "empty", None, &out)).await;
    assert!(
        o.status.success(),
        "curl: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap_or_default().len(), 0);

    let out = dir.path().join("out-atftp");
    let got = atftp_fetch(server.port(), "empty", &["windowsize 4"], &out).await;
    assert!(got.is_empty());

    let lines = logcap::wait_for(
        &["tftp transfer", "\"empty\"", "outcome=complete"],
        Duration::from_secs(5),
    )
    .await;
    assert!(!lines.is_empty());
}

/// Size a multiple of blksize: the transfer must end with an empty DATA block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_multiple_of_blksize() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_file(dir.path(), "exact512", 512 * 100, 4);
    let b = write_file(dir.path(), "exact1468", 1468 * 64, 5);
    let server = TestServer::start(dir.path(), TftpConfig::default()).await;

    let got = curl_fetch(server.port(), "exact512", Some(512), &dir.path().join("o1")).await;
    assert_same(&got, &a, "curl exact 512");
    let got = curl_fetch(
        server.port(),
        "exact1468",
        Some(1468),
        &dir.path().join("o2"),
    )
    .await;
    assert_same(&got, &b, "curl exact 1468");
    // 64 full blocks with windowsize 16: the empty block opens a window of its own.
    let got = atftp_fetch(
        server.port(),
        "exact1468",
        &["blksize 1468", "windowsize 16"],
        &dir.path().join("o3"),
    )
    .await;
    assert_same(&got, &b, "atftp exact 1468 w16");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backslashes_and_leading_slash_are_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "efi/boot/bootx64.efi", 10_000, 6);
    let server = TestServer::start(dir.path(), TftpConfig::default()).await;
    let mut c = common::RawClient::new(server.addr).await;
    assert_same(
        &c.fetch("\\efi\\boot\\bootx64.efi", 1468, 4).await,
        &want,
        "backslash",
    );
    let mut c = common::RawClient::new(server.addr).await;
    assert_same(
        &c.fetch("/efi/boot/bootx64.efi", 1468, 4).await,
        &want,
        "leading slash",
    );
}
