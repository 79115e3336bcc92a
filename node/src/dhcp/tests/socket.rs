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

#[tokio::test]
async fn server_mode_relay_round_trip_persists_lease() {
    let dir = std::env::temp_dir().join(format!("dhcp-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lease_file = dir.join("leases.json");
    let _ = std::fs::remove_file(&lease_file);

    // The "relay agent" lives on 127.0.0.2 at the same port number as the
    // server's DHCP port on 127.0.0.1: replies go to giaddr:<dhcp port>.
    let relay = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .unwrap();
    let port = relay.local_addr().unwrap().port();
    let mut p = pool();
    p.lease_file = Some(lease_file.clone());
    let cfg = DhcpConfig {
        mode: DhcpMode::Server(p),
        dhcp_port: port,
        ..loopback(server_cfg())
    };
    let server = DhcpServer::bind(cfg).await.unwrap();
    let to: SocketAddr = server.local_addrs().0.unwrap();
    assert_eq!(to.port(), port);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let giaddr = Ipv4Addr::new(127, 0, 0, 2);
    relay
        .send_to(&bytes(&with_giaddr(ipxe(Discover, MAC1, 0), giaddr)), to)
        .await
        .unwrap();
    let offer = recv_reply(&relay).await;
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 1, 0, 100));
    assert_eq!(offer.giaddr(), giaddr);
    assert_eq!(file(&offer), SCRIPT_URL);

    let req = with_giaddr(
        with_opt(
            with_opt(ipxe(Request, MAC1, 0), DhcpOption::ServerIdentifier(LOOP)),
            DhcpOption::RequestedIpAddress(offer.yiaddr()),
        ),
        giaddr,
    );
    relay.send_to(&bytes(&req), to).await.unwrap();
    let ack = recv_reply(&relay).await;
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    // The lease was written before the ACK was sent.
    let text = std::fs::read_to_string(&lease_file).unwrap();
    assert!(
        text.contains("52:54:00:12:34:01") && text.contains("10.1.0.100"),
        "{text}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
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
