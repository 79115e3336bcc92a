//! Many clients at once.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{assert_same, curl_cmd, logcap, write_file, RawClient, TestServer};
use netboot_node::tftp::TftpConfig;

/// 100 curl processes fetching a 1 MB file at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_curl_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "one-mb.bin", 1 << 20, 21);
    let server = TestServer::start(dir.path(), one_host_many_clients()).await;
    let port = server.port();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();

    let outs: Vec<_> = (0..100).map(|i| out_dir.join(format!("{i}"))).collect();
    let spawn_outs = outs.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        let children: Vec<_> = spawn_outs
            .iter()
            .enumerate()
            .map(|(i, out)| {
                let blksize = [None, Some(1468), Some(8192)][i % 3];
                let mut cmd = curl_cmd(port, "one-mb.bin", blksize, out);
                cmd.stdout(Stdio::null()).stderr(Stdio::piped());
                cmd.spawn().expect("spawn curl")
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait curl"))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();

    for (i, (o, out)) in statuses.iter().zip(&outs).enumerate() {
        assert!(
            o.status.success(),
            "curl #{i}: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same(&std::fs::read(out).unwrap(), &want, &format!("curl #{i}"));
    }
    let lines = logcap::wait_count(
        &["\"one-mb.bin\"", "outcome=complete"],
        100,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(lines.len(), 100);
}

/// 100 raw windowed clients in one process, mixing block and window sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_windowed_clients() {
    let dir = tempfile::tempdir().unwrap();
    let want = write_file(dir.path(), "w.bin", 1 << 20, 22);
    let server = TestServer::start(dir.path(), one_host_many_clients()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100u16 {
        let addr = server.addr;
        tasks.spawn(async move {
            let (blksize, window) =
                [(512, 8), (1468, 16), (8192, 4), (1024, 1)][usize::from(i % 4)];
            let mut c = RawClient::new(addr).await;
            c.fetch("w.bin", blksize, window).await
        });
    }
    let mut n = 0;
    while let Some(got) = tasks.join_next().await {
        assert_same(&got.expect("client task"), &want, "windowed client");
        n += 1;
    }
    assert_eq!(n, 100);
}

/// Every client here comes from 127.0.0.1: lift the per-client cap meant for real hosts.
fn one_host_many_clients() -> TftpConfig {
    TftpConfig {
        max_transfers_per_client: 1000,
        ..TftpConfig::default()
    }
}
