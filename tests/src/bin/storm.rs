//! `storm` — the boot-storm load generator of tests/bench/storm.sh: N simulated PXE clients
//! start at once, and each does what a BIOS PXE ROM and the program it loads do:
//!
//! 1. DHCP as a server-mode client: DISCOVER → OFFER → REQUEST → ACK (broadcast flag set,
//!    option 60 `PXEClient`, arch 0), retransmitting after 4, 8, 16 s like PXE firmware;
//! 2. TFTP: the boot file the ACK names, from the server it names (blksize 1432, tsize),
//!    one block per ACK, from the address the client leased;
//! 3. HTTP: one GET of `--http-path` from the same server, from the leased address.
//!
//! ```text
//! storm --iface DEV --server IP --clients N --http-path PATH [--http-port P]
//!       [--timeout SECS] [--seed N]
//! ```
//!
//! The leased addresses must be local to the generator's namespace (storm.sh adds a `local`
//! route for the pool to `lo`), so every client talks from its own address, as real machines
//! do. Prints one line per client on stdout (tab-separated: client, result, DHCP s, TFTP s,
//! HTTP s, total s, TFTP bytes, HTTP bytes, and on failure what failed), then a summary line
//! on stderr. Exit status 0 when the run completed (whatever the clients' results: a
//! benchmark reports failures, it does not judge them), 2 on bad arguments or setup errors.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dhcproto::{
    v4::{Architecture, DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode},
    Decodable, Encodable,
};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::{
    net::{TcpSocket, UdpSocket},
    sync::mpsc,
    time::timeout,
};

struct Args {
    iface: String,
    server: Ipv4Addr,
    clients: u32,
    http_path: String,
    http_port: u16,
    timeout: Duration,
    seed: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        map.insert(k, v);
    }
    let get = |k: &str| map.get(k).cloned().ok_or(format!("missing {k}"));
    let num = |k: &str, d: u64| -> Result<u64, String> {
        map.get(k)
            .map(|v| v.parse().map_err(|_| format!("{k}: not a number: {v}")))
            .unwrap_or(Ok(d))
    };
    Ok(Args {
        iface: get("--iface")?,
        server: get("--server")?
            .parse()
            .map_err(|_| "--server: not an IPv4 address".to_string())?,
        clients: num("--clients", 300)? as u32,
        http_path: get("--http-path")?,
        http_port: num("--http-port", 80)? as u16,
        timeout: Duration::from_secs(num("--timeout", 300)?),
        seed: num("--seed", u64::from(std::process::id()))? as u32,
    })
}

/// Replies routed to the client waiting for that transaction id.
type Waiters = Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Message>>>>;

#[derive(Default)]
struct Report {
    dhcp: Option<Duration>,
    tftp: Option<Duration>,
    http: Option<Duration>,
    tftp_bytes: u64,
    http_bytes: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("storm: {e}\nusage: storm --iface DEV --server IP --clients N --http-path PATH [--http-port P] [--timeout SECS] [--seed N]");
            return ExitCode::from(2);
        }
    };
    let dhcp = match dhcp_socket(&args.iface) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("storm: DHCP client socket on {}: {e}", args.iface);
            return ExitCode::from(2);
        }
    };
    let waiters: Waiters = Arc::default();
    tokio::spawn(dispatch(dhcp.clone(), waiters.clone()));

    let start = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let (args, dhcp, waiters) = (args.clone(), dhcp.clone(), waiters.clone());
            tokio::spawn(async move {
                let mut report = Report::default();
                let t0 = Instant::now();
                let result = timeout(args.timeout, client(i, &args, &dhcp, &waiters, &mut report))
                    .await
                    .unwrap_or_else(|_| Err(format!("not done after {:?}", args.timeout)));
                (i, result, report, t0.elapsed())
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let Ok((i, result, r, total)) = task.await else {
            continue;
        };
        let s = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.3}", d.as_secs_f64()));
        let (res, why) = match result {
            Ok(()) => {
                ok += 1;
                ("ok", String::new())
            }
            Err(e) => ("fail", e),
        };
        println!(
            "{i}\t{res}\t{}\t{}\t{}\t{:.3}\t{}\t{}\t{why}",
            s(r.dhcp),
            s(r.tftp),
            s(r.http),
            total.as_secs_f64(),
            r.tftp_bytes,
            r.http_bytes
        );
    }
    eprintln!(
        "storm: {ok} of {} clients booted in {:.1} s",
        args.clients,
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Port 68 on the boot interface, allowed to broadcast (the namespace has no default route,
/// so the limited broadcast needs the device binding to leave).
fn dhcp_socket(iface: &str) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(iface.as_bytes()))?;
    s.set_recv_buffer_size(4 << 20)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())?;
    UdpSocket::from_std(s.into())
}

async fn dispatch(socket: Arc<UdpSocket>, waiters: Waiters) {
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, _)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(msg) = Message::from_bytes(&buf[..n]) else {
            continue;
        };
        if msg.opcode() != Opcode::BootReply {
            continue;
        }
        let waiters = waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = waiters.get(&msg.xid()) {
            let _ = tx.send(msg);
        }
    }
}

async fn client(
    i: u32,
    args: &Args,
    dhcp: &UdpSocket,
    waiters: &Waiters,
    report: &mut Report,
) -> Result<(), String> {
    let t = Instant::now();
    let mac = [0x02, 0x53, (i >> 16) as u8, (i >> 8) as u8, i as u8, 0x01];
    let xid = args.seed.wrapping_mul(0x9E37_79B9) ^ i;
    let (tx, mut rx) = mpsc::unbounded_channel();
    waiters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(xid, tx);
    let lease = lease(mac, xid, dhcp, &mut rx).await;
    waiters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&xid);
    let (ip, tftp_server, file) = lease?;
    report.dhcp = Some(t.elapsed());

    let t = Instant::now();
    report.tftp_bytes = tftp_get(ip, tftp_server, &file)
        .await
        .map_err(|e| format!("tftp {file}: {e}"))?;
    report.tftp = Some(t.elapsed());

    let t = Instant::now();
    report.http_bytes = http_get(
        ip,
        SocketAddr::from((args.server, args.http_port)),
        &args.http_path,
    )
    .await
    .map_err(|e| format!("http {}: {e}", args.http_path))?;
    report.http = Some(t.elapsed());
    Ok(())
}

fn dhcp_message(mac: [u8; 6], xid: u32, t: MessageType, secs: u16) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_chaddr(&mac)
        .set_xid(xid)
        .set_secs(secs)
        .set_flags(Flags::default().set_broadcast());
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(t));
    o.insert(DhcpOption::MaxMessageSize(1472));
    o.insert(DhcpOption::ClientSystemArchitecture(Architecture(0)));
    o.insert(DhcpOption::ClientNetworkInterface(1, 2, 1));
    o.insert(DhcpOption::ClassIdentifier(
        b"PXEClient:Arch:00000:UNDI:002001".to_vec(),
    ));
    o.insert(DhcpOption::ParameterRequestList(
        [1u8, 3, 6, 43, 54, 60, 66, 67]
            .iter()
            .map(|c| OptionCode::from(*c))
            .collect(),
    ));
    m
}

/// PXE firmware's retransmission schedule (PXE 2.1: 4, 8, 16 and 32 s; the last is left out to
/// bound a run).
const DHCP_TRIES: [u64; 3] = [4, 8, 16];

/// Sends `msg` and waits for a reply of type `want` (or a NAK), retransmitting on schedule.
async fn exchange(
    socket: &UdpSocket,
    msg: &Message,
    want: MessageType,
    rx: &mut mpsc::UnboundedReceiver<Message>,
) -> Result<Message, String> {
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let to = SocketAddr::from((Ipv4Addr::BROADCAST, 67));
    for wait in DHCP_TRIES {
        socket
            .send_to(&bytes, to)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            match reply.opts().msg_type() {
                Some(t) if t == want => return Ok(reply),
                Some(MessageType::Nak) => return Err("NAK".into()),
                _ => {}
            }
        }
    }
    Err(format!("no {want:?} after {} tries", DHCP_TRIES.len()))
}

/// DISCOVER → OFFER → REQUEST → ACK; returns the address, the TFTP server and the boot file.
async fn lease(
    mac: [u8; 6],
    xid: u32,
    socket: &UdpSocket,
    rx: &mut mpsc::UnboundedReceiver<Message>,
) -> Result<(Ipv4Addr, Ipv4Addr, String), String> {
    let discover = dhcp_message(mac, xid, MessageType::Discover, 0);
    let offer = exchange(socket, &discover, MessageType::Offer, rx)
        .await
        .map_err(|e| format!("dhcp discover: {e}"))?;
    let server_id = match offer.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => *ip,
        _ => return Err("dhcp: OFFER without server identifier".into()),
    };
    let mut request = dhcp_message(mac, xid, MessageType::Request, 4);
    request
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
    request
        .opts_mut()
        .insert(DhcpOption::ServerIdentifier(server_id));
    let ack = exchange(socket, &request, MessageType::Ack, rx)
        .await
        .map_err(|e| format!("dhcp request: {e}"))?;
    let file = match ack.opts().get(OptionCode::BootfileName) {
        Some(DhcpOption::BootfileName(f)) => String::from_utf8_lossy(f).into_owned(),
        _ => String::from_utf8_lossy(ack.fname().unwrap_or_default()).into_owned(),
    };
    let file = file.trim_end_matches('\0').to_string();
    if file.is_empty() {
        return Err("dhcp: ACK names no boot file".into());
    }
    let next = if ack.siaddr().is_unspecified() {
        server_id
    } else {
        ack.siaddr()
    };
    Ok((ack.yiaddr(), next, file))
}

const BLKSIZE: usize = 1432;

/// An RFC 1350 read with blksize and tsize, one block per ACK, as PXE firmware reads its boot
/// file. Returns the bytes received.
async fn tftp_get(ip: Ipv4Addr, server: Ipv4Addr, file: &str) -> Result<u64, String> {
    let socket = UdpSocket::bind(SocketAddrV4::new(ip, 0))
        .await
        .map_err(|e| format!("bind {ip}: {e}"))?;
    let mut rrq = vec![0, 1];
    for field in [file, "octet", "tsize", "0", "blksize", &BLKSIZE.to_string()] {
        rrq.extend_from_slice(field.as_bytes());
        rrq.push(0);
    }
    let mut last_sent = rrq;
    let mut dest = SocketAddr::from((server, 69));
    let mut peer: Option<SocketAddr> = None;
    let mut blksize = 512;
    let mut expect: u16 = 1;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 65536];
    let mut tries = 0;
    loop {
        socket
            .send_to(&last_sent, dest)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let (n, from) = match timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await {
            Ok(r) => r.map_err(|e| format!("recv: {e}"))?,
            Err(_) => {
                tries += 1;
                if tries > 6 {
                    return Err(format!("no answer after {tries} tries at block {expect}"));
                }
                continue;
            }
        };
        if peer.is_some_and(|p| p != from) {
            continue;
        }
        let p = &buf[..n];
        if p.len() < 4 {
            continue;
        }
        match u16::from_be_bytes([p[0], p[1]]) {
            6 if peer.is_none() => {
                // OACK: take blksize, acknowledge with block 0.
                let fields: Vec<&[u8]> = p[2..].split(|b| *b == 0).collect();
                for pair in fields.chunks(2) {
                    if let [k, v] = pair {
                        if k.eq_ignore_ascii_case(b"blksize") {
                            blksize = std::str::from_utf8(v)
                                .ok()
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(512);
                        }
                    }
                }
                peer = Some(from);
                dest = from;
                last_sent = vec![0, 4, 0, 0];
            }
            3 => {
                let block = u16::from_be_bytes([p[2], p[3]]);
                peer.get_or_insert(from);
                dest = from;
                if block != expect {
                    // A duplicate: our ACK was lost or late; the resend of the last ACK fixes it.
                    continue;
                }
                tries = 0;
                let data = n - 4;
                bytes += data as u64;
                last_sent = vec![0, 4, p[2], p[3]];
                expect = expect.wrapping_add(1);
                if data < blksize {
                    socket
                        .send_to(&last_sent, dest)
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    return Ok(bytes);
                }
            }
            5 => {
                let msg = String::from_utf8_lossy(&p[4..]);
                return Err(format!(
                    "server error {}: {}",
                    u16::from_be_bytes([p[2], p[3]]),
                    msg.trim_end_matches('\0')
                ));
            }
            _ => {}
        }
    }
}

/// One GET over HTTP/1.1 from the leased address; returns the body bytes received, which must
/// be all the response announced.
async fn http_get(ip: Ipv4Addr, server: SocketAddr, path: &str) -> Result<u64, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::from((ip, 0)))
        .map_err(|e| format!("bind {ip}: {e}"))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect {server}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, server.ip().to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    let announced = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("after {got} bytes: {e}"))?;
        if let Some(d) = frame.data_ref() {
            got += d.len() as u64;
        }
    }
    match announced {
        Some(n) if n != got => Err(format!("{got} of {n} bytes")),
        _ => Ok(got),
    }
}
