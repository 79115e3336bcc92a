//! The listener over real sockets, loopback only (127.0.0.0/8).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, MessageType::*};
use dhcproto::Decodable;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::clients::*;
use crate::dhcp::{DhcpConfig, DhcpMode, DhcpServer, ServerError};

const LOOP: Ipv4Addr = Ipv4Addr::LOCALHOST;

async fn recv_reply(s: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), s.recv_from(&mut buf))
        .await
        .expect("no reply within 5 s")
        .unwrap();
    assert!(n >= 300);
    Message::from_bytes(&buf[..n]).unwrap()
}

fn loopback(cfg: DhcpConfig) -> DhcpConfig {
    DhcpConfig {
        server_ip: LOOP,
        listen_ip: LOOP,
        dhcp_port: 0,
        pxe_port: 0,
        ..cfg
    }
}

fn file(m: &Message) -> String {
    String::from_utf8(m.fname().unwrap().to_vec())
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

#[tokio::test]
async fn proxy_listener_survives_junk_and_answers_4011() {
    let server = DhcpServer::bind(loopback(proxy_cfg())).await.unwrap();
    let (dhcp, pxe) = server.local_addrs();
    let (dhcp, pxe) = (dhcp.unwrap(), pxe.unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let client = UdpSocket::bind((LOOP, 0)).await.unwrap();
    let req = with_ciaddr(edk2(Request, MAC2), LOOP);
    let good = bytes(&req);
    // Junk first, on both ports: random, truncated, a reply, empty.
    for to in [dhcp, pxe] {
        for junk in [
            &b"\x01\x01\x06"[..],
            &good[..good.len() - 3],
            &[0u8; 0][..],
            &[0xffu8; 600][..],
        ] {
            client.send_to(junk, to).await.unwrap();
        }
    }
    // A non-PXE client on 4011 gets nothing either.
    client
        .send_to(&bytes(&with_ciaddr(dhclient(Request, MAC1), LOOP)), pxe)
        .await
        .unwrap();
    for _ in 0..2 {
        client.send_to(&good, pxe).await.unwrap();
        let ack = recv_reply(&client).await;
        assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
        assert_eq!(ack.xid(), req.xid());
        assert_eq!(file(&ack), "ipxe.efi");
        assert_eq!(ack.siaddr(), LOOP);
        assert!(ack.yiaddr().is_unspecified());
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// The client without the broadcast flag: replies to a client with an address (ciaddr) go
/// to it by unicast, which keeps every reply of these tests on loopback.
fn unicast(mut m: Message) -> Message {
    m.set_flags(dhcproto::v4::Flags::default());
    m
}

/// A server-mode listener on loopback whose replies to clients go to `client`'s port.
async fn serve_pool(pool: crate::dhcp::PoolConfig, client: &UdpSocket) -> (SocketAddr, Running) {
    let cfg = DhcpConfig {
        mode: DhcpMode::Server(pool),
        client_port: client.local_addr().unwrap().port(),
        ..loopback(server_cfg())
    };
    let server = DhcpServer::bind(cfg).await.unwrap();
    let to: SocketAddr = server.local_addrs().0.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    (to, Running { stop, task })
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

async fn no_reply(s: &UdpSocket) {
    let mut buf = vec![0u8; 2048];
    let got = tokio::time::timeout(Duration::from_millis(500), s.recv_from(&mut buf)).await;
    assert!(got.is_err(), "unexpected reply");
}

#[tokio::test]
async fn server_mode_round_trip_persists_lease_and_a_loopback_relay_gets_nothing() {
    let dir = std::env::temp_dir().join(format!("dhcp-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lease_file = dir.join("leases.json");
    let _ = std::fs::remove_file(&lease_file);

    let client_ip = Ipv4Addr::new(127, 0, 0, 2);
    let client = UdpSocket::bind((client_ip, 0)).await.unwrap();
    let mut p = pool();
    p.lease_file = Some(lease_file.clone());
    let (to, server) = serve_pool(p, &client).await;

    // A "relay" on loopback would make the node answer to itself: dropped, no reply.
    client
        .send_to(&bytes(&with_giaddr(ipxe(Discover, MAC1, 0), client_ip)), to)
        .await
        .unwrap();
    no_reply(&client).await;

    let discover = unicast(with_ciaddr(ipxe(Discover, MAC1, 0), client_ip));
    client.send_to(&bytes(&discover), to).await.unwrap();
    let offer = recv_reply(&client).await;
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 1, 0, 100));
    assert_eq!(file(&offer), SCRIPT_URL);

    let req = unicast(with_ciaddr(
        with_opt(
            with_opt(ipxe(Request, MAC1, 0), DhcpOption::ServerIdentifier(LOOP)),
            DhcpOption::RequestedIpAddress(offer.yiaddr()),
        ),
        client_ip,
    ));
    client.send_to(&bytes(&req), to).await.unwrap();
    let ack = recv_reply(&client).await;
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    // The lease was written before the ACK was sent.
    let text = std::fs::read_to_string(&lease_file).unwrap();
    assert!(
        text.contains("52:54:00:12:34:01") && text.contains("10.1.0.100"),
        "{text}"
    );

    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_dhcp_service_on_the_same_port_is_refused_naming_the_holder() {
    let first = DhcpServer::bind(loopback(proxy_cfg())).await.unwrap();
    let (dhcp, pxe) = first.local_addrs();
    let cfg = DhcpConfig {
        dhcp_port: dhcp.unwrap().port(),
        pxe_port: pxe.unwrap().port(),
        ..loopback(proxy_cfg())
    };
    let err = DhcpServer::bind(cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ServerError::InUse { .. }), "{text}");
    assert!(
        text.contains("already serves DHCP")
            && text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    drop(first);
}

/// A flood of DISCOVERs from random MACs against a /16 pool: each reserves a new address
/// for a minute. Real clients sent in between must still get their OFFERs. (With the
/// former linear scan over the pool and all pending offers the node fell behind, the
/// socket buffer overflowed, and the late real clients went unanswered.)
#[tokio::test]
async fn a_discover_flood_on_a_large_pool_does_not_starve_real_clients() {
    const FLOOD: u32 = 3000;
    let client_ip = Ipv4Addr::new(127, 0, 0, 3);
    let client = std::sync::Arc::new(UdpSocket::bind((client_ip, 0)).await.unwrap());
    let mut p = pool();
    p.range_start = Ipv4Addr::new(10, 1, 0, 1);
    p.range_end = Ipv4Addr::new(10, 1, 255, 254);
    p.subnet_mask = Ipv4Addr::new(255, 255, 0, 0);
    let (to, server) = serve_pool(p, &client).await;

    // Collect every reply: (MAC, type).
    let rx = client.clone();
    let collector = tokio::spawn(async move {
        let mut got = std::collections::HashMap::new();
        let mut buf = vec![0u8; 2048];
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(3), rx.recv_from(&mut buf)).await
        {
            if let Ok(m) = Message::from_bytes(&buf[..n]) {
                got.insert(m.chaddr().to_vec(), m.opts().msg_type());
            }
        }
        got
    });
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut real = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..FLOOD {
        if i % 10 == 0 {
            tick.tick().await; // ~1,000 packets/s: a flood, not a socket-buffer overflow
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&rng.to_le_bytes()[..6]);
        mac[0] = (mac[0] & 0xfe) | 0x02;
        // Real clients come late, when the flood has reserved thousands of addresses.
        if i >= 2000 && i % 100 == 50 {
            mac = [0x52, 0x54, 0x00, 0xaa, 0x00, real.len() as u8];
            real.push(mac.to_vec());
        }
        let m = unicast(with_ciaddr(dhclient(Discover, mac), client_ip));
        client.send_to(&bytes(&m), to).await.unwrap();
    }
    let got = collector.await.unwrap();
    for mac in &real {
        assert_eq!(
            got.get(mac),
            Some(&Some(MessageType::Offer)),
            "real client {mac:02x?} got no OFFER during the flood ({} replies in all)",
            got.len()
        );
    }
    assert!(
        got.len() as u32 >= FLOOD * 95 / 100,
        "{} of {FLOOD} answered",
        got.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn bind_to_interface_lo() {
    let cfg = DhcpConfig {
        interface: Some("lo".into()),
        ..loopback(proxy_cfg())
    };
    match DhcpServer::bind(cfg).await {
        Ok(s) => assert!(s.local_addrs().0.is_some()),
        // SO_BINDTODEVICE needs CAP_NET_RAW; without it the error must say so.
        Err(ServerError::Bind {
            interface, source, ..
        }) => {
            assert_eq!(interface.as_deref(), Some("lo"));
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{source}"
            );
        }
        Err(e) => panic!("{e}"),
    }
    let cfg = DhcpConfig {
        interface: Some("no-such-if0".into()),
        ..loopback(proxy_cfg())
    };
    let e = DhcpServer::bind(cfg).await.unwrap_err();
    assert!(e.to_string().contains("no-such-if0"), "{e}");
}

#[tokio::test]
async fn off_mode_binds_nothing_and_run_returns() {
    let cfg = DhcpConfig {
        mode: DhcpMode::Off,
        ..DhcpConfig::default()
    };
    let s = DhcpServer::bind(cfg).await.unwrap();
    assert_eq!(s.local_addrs(), (None, None));
    tokio::time::timeout(Duration::from_secs(1), s.run())
        .await
        .unwrap();
}
