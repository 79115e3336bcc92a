//! Shared helpers for the integration tests: a server on loopback, external
//! client wrappers, a raw UDP client and a log capture.
#![allow(dead_code)] // each test binary uses a different subset

pub mod logcap;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use netboot_node::tftp::packet::{Mode, Packet, Request, TftpOption};
use netboot_node::tftp::{serve_until, DirSource, TftpConfig};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on 127.0.0.1:0 serving `root`. Stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(root: &Path, config: TftpConfig) -> Self {
        Self::start_on("127.0.0.1:0", root, config).await
    }

    pub async fn start_on(bind: &str, root: &Path, config: TftpConfig) -> Self {
        logcap::install();
        let socket = UdpSocket::bind(bind).await.expect("bind test server");
        let addr = socket.local_addr().expect("local addr");
        let source = Arc::new(DirSource::new(root).expect("dir source"));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve_until(socket, source, config, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Graceful stop: returns once running transfers have ended.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Deterministic pseudo-random content, different per `seed`, so a misplaced
/// block can never compare equal by accident.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write_file(dir: &Path, name: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = content(len, seed);
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, &data).expect("write test file");
    data
}

/// Fails (never skips) when an external client is missing, naming the package.
pub fn require_binary(bin: &str, package: &str) -> PathBuf {
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let candidate = dir.join(bin);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{bin}` is required for this test but was not found in PATH: run `apt-get install -y {package}`");
}

/// Runs a blocking external client off the async workers.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("spawn client"))
        .await
        .expect("join client")
}

pub fn curl_cmd(port: u16, file: &str, blksize: Option<u16>, out: &Path) -> Command {
    let mut cmd = Command::new(require_binary("curl", "curl"));
    cmd.arg("-s")
        .arg("--max-time")
        .arg("120")
        .arg(format!("tftp://127.0.0.1:{port}/{file}"));
    if let Some(b) = blksize {
        cmd.arg("--tftp-blksize").arg(b.to_string());
    }
    cmd.arg("-o").arg(out);
    cmd
}

/// Fetches with curl; panics with curl's output on failure.
pub async fn curl_fetch(port: u16, file: &str, blksize: Option<u16>, out: &Path) -> Vec<u8> {
    let o = run(curl_cmd(port, file, blksize, out)).await;
    assert!(
        o.status.success(),
        "curl {file} failed: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).expect("read curl output")
}

pub fn atftp_cmd(port: u16, file: &str, options: &[&str], out: &Path) -> Command {
    let mut cmd = Command::new(require_binary("atftp", "atftp"));
    cmd.arg("--get").arg("-r").arg(file).arg("-l").arg(out);
    for o in options {
        cmd.arg("--option").arg(o);
    }
    cmd.arg("127.0.0.1").arg(port.to_string());
    cmd
}

pub async fn atftp_fetch(port: u16, file: &str, options: &[&str], out: &Path) -> Vec<u8> {
    let o = run(atftp_cmd(port, file, options, out)).await;
    assert!(
        o.status.success(),
        "atftp {file} {options:?} failed: {:?} {} {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).expect("read atftp output")
}

/// Compares without dumping megabytes into the failure message.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

/// What a raw client received, owned so it can outlive the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rx {
    Data { block: u16, payload: Vec<u8> },
    Oack(Vec<(String, String)>),
    Error { code: u16, message: String },
    Other(Vec<u8>),
}

/// A hand-driven TFTP client on 127.0.0.1 for protocol-level tests.
pub struct RawClient {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    /// The transfer socket of the server, learnt from its first reply.
    pub tid: Option<SocketAddr>,
    /// DATA packets [`RawClient::fetch`] got again after it had them (server retransmits).
    pub resent: u32,
    buf: Vec<u8>,
}

impl RawClient {
    pub async fn new(server: SocketAddr) -> Self {
        let bind = if server.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        Self::new_from(server, bind).await
    }

    /// A client on another address, e.g. `127.0.0.2:0` (all of 127/8 is loopback), to be
    /// a different host to the server.
    pub async fn new_from(server: SocketAddr, bind: &str) -> Self {
        let sock = UdpSocket::bind(bind).await.expect("bind raw client");
        Self {
            sock,
            server,
            tid: None,
            resent: 0,
            buf: vec![0u8; 70_000],
        }
    }

    pub async fn send_main(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).await.expect("send");
    }

    pub async fn rrq(&self, file: &str, options: &[(&str, &str)]) {
        let req = Request {
            filename: file.to_owned(),
            mode: Mode::Octet,
            options: options
                .iter()
                .map(|(n, v)| TftpOption::new(*n, *v))
                .collect(),
        };
        let mut buf = Vec::new();
        Packet::Rrq(req).encode(&mut buf);
        self.send_main(&buf).await;
    }

    /// Next packet from the server (any source port), or None after `wait`.
    pub async fn recv(&mut self, wait: Duration) -> Option<Rx> {
        let (n, from) = tokio::time::timeout(wait, self.sock.recv_from(&mut self.buf))
            .await
            .ok()?
            .ok()?;
        if self.tid.is_none() && from != self.server {
            self.tid = Some(from);
        }
        Some(match Packet::parse(&self.buf[..n]) {
            Ok(Packet::Data { block, payload }) => Rx::Data {
                block,
                payload: payload.to_vec(),
            },
            Ok(Packet::Oack(opts)) => {
                Rx::Oack(opts.into_iter().map(|o| (o.name, o.value)).collect())
            }
            Ok(Packet::Error { code, message }) => Rx::Error {
                code,
                message: message.into_owned(),
            },
            _ => Rx::Other(self.buf[..n].to_vec()),
        })
    }

    pub async fn expect(&mut self, wait: Duration) -> Rx {
        self.recv(wait)
            .await
            .expect("expected a packet from the server")
    }

    pub async fn ack(&self, block: u16) {
        let tid = self.tid.expect("no transfer id yet");
        let mut buf = Vec::new();
        Packet::Ack(block).encode(&mut buf);
        self.sock.send_to(&buf, tid).await.expect("send ack");
    }

    pub async fn error(&self, code: u16, message: &str) {
        let tid = self.tid.expect("no transfer id yet");
        let mut buf = Vec::new();
        Packet::Error {
            code,
            message: message.into(),
        }
        .encode(&mut buf);
        self.sock.send_to(&buf, tid).await.expect("send error");
    }

    /// Complete windowed download on a loss-free path; checks every block
    /// number (including the wrap 65535 -> 0) and returns the bytes.
    pub async fn fetch(&mut self, file: &str, blksize: u16, windowsize: u16) -> Vec<u8> {
        let (bs, ws) = (blksize.to_string(), windowsize.to_string());
        self.rrq(file, &[("blksize", &bs), ("windowsize", &ws)])
            .await;
        // Generous: on a loaded machine this process may not run for seconds.
        let wait = Duration::from_secs(20);
        match self.expect(wait).await {
            Rx::Oack(opts) => {
                assert!(opts.contains(&("blksize".into(), bs.clone())), "{opts:?}");
                assert!(
                    opts.contains(&("windowsize".into(), ws.clone())),
                    "{opts:?}"
                );
            }
            other => panic!("expected OACK, got {other:?}"),
        }
        self.ack(0).await;
        let mut out = Vec::new();
        let mut expected: u16 = 1;
        let mut in_window = 0u16;
        let mut received: u64 = 0;
        loop {
            match self.expect(wait).await {
                Rx::Data { block, .. } if is_resent(block, expected, windowsize, received) => {
                    // The server's timer ran out before our ACK reached it (the ACK was
                    // late, not lost: the machine was busy) and it resent the window. A
                    // real client ignores these (the first copy is the one kept and compared).
                    self.resent += 1;
                }
                // Likewise the OACK, when our ACK 0 was late.
                Rx::Oack(_) if received == 0 => self.resent += 1,
                Rx::Data { block, payload } => {
                    assert_eq!(block, expected, "out-of-order block on a loss-free path");
                    out.extend_from_slice(&payload);
                    received += 1;
                    in_window += 1;
                    let last = payload.len() < usize::from(blksize);
                    if last || in_window == windowsize {
                        self.ack(block).await;
                        in_window = 0;
                    }
                    if last {
                        return out;
                    }
                    expected = expected.wrapping_add(1);
                }
                other => panic!("expected DATA {expected}, got {other:?}"),
            }
        }
    }
}

/// `block` is one of the last `windowsize` blocks received before `expected`: resent, not
/// a gap or a block out of order.
fn is_resent(block: u16, expected: u16, windowsize: u16, received: u64) -> bool {
    let behind = expected.wrapping_sub(block);
    behind >= 1 && behind <= windowsize.max(1) && u64::from(behind) <= received
}

pub fn quick_config() -> TftpConfig {
    TftpConfig {
        default_timeout: Duration::from_millis(200),
        max_timeout: Duration::from_millis(400),
        max_retries: 3,
        ..TftpConfig::default()
    }
}
