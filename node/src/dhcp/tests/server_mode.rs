//! Server mode: pool allocation, NAKs, RELEASE/DECLINE/INFORM, boot options.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType::*};

use super::clients::*;
use crate::dhcp::decide::LocalPort;
use crate::dhcp::{BootFiles, DhcpConfig, DhcpMode, MacAddr, State};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, last)
}

/// REQUEST as sent in SELECTING state after our OFFER of `addr`.
fn selecting(m: Message, addr: Ipv4Addr) -> Message {
    with_opt(
        with_opt(m, DhcpOption::ServerIdentifier(SERVER_IP)),
        DhcpOption::RequestedIpAddress(addr),
    )
}

/// DISCOVER + REQUEST; returns the ACKed address.
fn lease(cfg: &DhcpConfig, st: &mut State, mac: [u8; 6], now: u64) -> Ipv4Addr {
    let o = wire(&run(
        cfg,
        st,
        &dhclient(Discover, mac),
        LocalPort::Dhcp,
        "0.0.0.0:68",
        now,
    ));
    assert_eq!(o.msg_type(), OFFER);
    let a = wire(&run(
        cfg,
        st,
        &selecting(dhclient(Request, mac), o.yiaddr),
        LocalPort::Dhcp,
        "0.0.0.0:68",
        now,
    ));
    assert_eq!(a.msg_type(), ACK);
    assert_eq!(a.yiaddr, o.yiaddr);
    a.yiaddr
}

#[test]
fn plain_client_discover_request_ack() {
    let (cfg, mut st) = (server_cfg(), State::default());
    let m = dhclient(Discover, MAC1);
    let out = run67(&cfg, &mut st, &m);
    let w = wire(&out);
    assert_reply_basics(&w, &m);
    assert_eq!(w.msg_type(), OFFER);
    assert_eq!(w.yiaddr, ip(100));
    assert_eq!(w.siaddr, SERVER_IP);
    assert_eq!(w.opt(1), Some(&[255, 255, 255, 0][..]));
    assert_eq!(w.opt(3), Some(&[10, 1, 0, 1][..]));
    assert_eq!(w.opt(6), Some(&[10, 1, 0, 1, 10, 1, 0, 3][..]));
    assert_eq!(w.opt(15), Some(&b"lab.test"[..]));
    assert_eq!(w.opt(28), Some(&[10, 1, 0, 255][..]));
    assert_eq!(w.opt(51), Some(&3600u32.to_be_bytes()[..]));
    assert_eq!(w.opt(58), Some(&1800u32.to_be_bytes()[..]));
    assert_eq!(w.opt(59), Some(&3150u32.to_be_bytes()[..]));
    for code in [43, 60, 66, 67, 97] {
        assert_eq!(
            w.opt(code),
            None,
            "no boot option {code} for a non-PXE client"
        );
    }
    assert_eq!(w.file, "");
    assert_eq!(w.dest, sa(BCAST68), "no address yet: broadcast");
    assert!(out.log.contains("OFFER 10.1.0.100"), "{}", out.log);
    assert!(st.leases().is_empty(), "an OFFER is not a lease");

    let r = selecting(dhclient(Request, MAC1), ip(100));
    let w = wire(&run67(&cfg, &mut st, &r));
    assert_reply_basics(&w, &r);
    assert_eq!(w.msg_type(), ACK);
    assert_eq!(w.yiaddr, ip(100));
    assert_eq!(w.opt(51), Some(&3600u32.to_be_bytes()[..]));
    let l = st.leases().by_mac(MacAddr(MAC1)).unwrap();
    assert_eq!((l.ip, l.expires), (ip(100), T0 + 3600));
    assert!(st.leases().is_dirty(), "listener must persist");
}

#[test]
fn allocation_order_and_requested_address() {
    let (cfg, mut st) = (server_cfg(), State::default());
    assert_eq!(lease(&cfg, &mut st, MAC1, T0), ip(100));
    // Same client again: same address.
    assert_eq!(
        wire(&run67(&cfg, &mut st, &dhclient(Discover, MAC1))).yiaddr,
        ip(100)
    );
    // A pending OFFER is reserved for its client.
    assert_eq!(
        wire(&run67(&cfg, &mut st, &dhclient(Discover, MAC2))).yiaddr,
        ip(101)
    );
    assert_eq!(
        wire(&run67(&cfg, &mut st, &dhclient(Discover, MAC3))).yiaddr,
        ip(102)
    );
    // Requested address honoured when free...
    let m = with_opt(
        dhclient(Discover, [2, 0, 0, 0, 0, 4]),
        DhcpOption::RequestedIpAddress(ip(104)),
    );
    assert_eq!(wire(&run67(&cfg, &mut st, &m)).yiaddr, ip(104));
    // ...not when taken, out of pool, or our own.
    for want in [ip(100), ip(200), SERVER_IP] {
        let m = with_opt(
            dhclient(Discover, [2, 0, 0, 0, 0, 5]),
            DhcpOption::RequestedIpAddress(want),
        );
        assert_eq!(wire(&run67(&cfg, &mut st, &m)).yiaddr, ip(103));
    }
}

#[test]
fn pool_exhausted_gets_no_answer() {
    let (cfg, mut st) = (server_cfg(), State::default());
    for i in 0..5 {
        lease(&cfg, &mut st, [2, 0, 0, 0, 1, i], T0);
    }
    let out = run67(&cfg, &mut st, &dhclient(Discover, MAC1));
    assert!(out.reply.is_none());
    assert!(
        out.log.contains("no free address in the pool"),
        "{}",
        out.log
    );
}

#[test]
fn nak_cases() {
    let (cfg, mut st) = (server_cfg(), State::default());
    assert_eq!(lease(&cfg, &mut st, MAC1, T0), ip(100));
    // Not in the pool (INIT-REBOOT from another network).
    let m = with_opt(
        dhclient(Request, MAC2),
        DhcpOption::RequestedIpAddress(ip(200)),
    );
    let out = run67(&cfg, &mut st, &m);
    let w = wire(&out);
    assert_reply_basics(&w, &m);
    assert_eq!(w.msg_type(), NAK);
    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.siaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.opt(51), None);
    assert_eq!(
        w.opt_str(56).as_deref(),
        Some("address 10.1.0.200 not in our pool")
    );
    assert_eq!(w.dest, sa(BCAST68));
    // Taken by another MAC.
    let w = wire(&run67(
        &cfg,
        &mut st,
        &selecting(dhclient(Request, MAC2), ip(100)),
    ));
    assert_eq!(w.msg_type(), NAK);
    assert_eq!(
        w.opt_str(56).as_deref(),
        Some("address 10.1.0.100 leased to 52:54:00:12:34:01")
    );
    // Renewing (ciaddr) an address that is not ours, unicast: NAK, broadcast.
    let m = with_ciaddr(dhclient(Request, MAC2), Ipv4Addr::new(192, 168, 9, 9));
    let w = wire(&run(
        &cfg,
        &mut st,
        &m,
        LocalPort::Dhcp,
        "192.168.9.9:68",
        T0,
    ));
    assert_eq!(w.msg_type(), NAK);
    assert_eq!(w.dest, sa(BCAST68));
    assert_eq!(st.leases().len(), 1);
}

#[test]
fn request_for_another_server_is_ignored_and_frees_the_offer() {
    let (cfg, mut st) = (server_cfg(), State::default());
    assert_eq!(
        wire(&run67(&cfg, &mut st, &dhclient(Discover, MAC1))).yiaddr,
        ip(100)
    );
    let m = with_opt(
        with_opt(
            dhclient(Request, MAC1),
            DhcpOption::ServerIdentifier(SITE_DHCP),
        ),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 0, 50)),
    );
    let out = run67(&cfg, &mut st, &m);
    assert!(out.reply.is_none());
    assert!(
        out.log.contains("client chose server 10.1.0.1"),
        "{}",
        out.log
    );
    assert!(st.leases().is_empty());
    // .100 is free again for someone else.
    assert_eq!(
        wire(&run67(&cfg, &mut st, &dhclient(Discover, MAC2))).yiaddr,
        ip(100)
    );
}

#[test]
fn renew_is_unicast_and_extends() {
    let (cfg, mut st) = (server_cfg(), State::default());
    let a = lease(&cfg, &mut st, MAC1, T0);
    let m = with_ciaddr(dhclient(Request, MAC1), a);
    let w = wire(&run(
        &cfg,
        &mut st,
        &m,
        LocalPort::Dhcp,
        "10.1.0.100:68",
        T0 + 1800,
    ));
    assert_eq!(w.msg_type(), ACK);
    assert_eq!(w.yiaddr, a);
    assert_eq!(w.ciaddr, a);
    assert_eq!(w.dest, sa("10.1.0.100:68"));
    assert_eq!(st.leases().by_ip(a).unwrap().expires, T0 + 1800 + 3600);
}

#[test]
fn release_frees_the_address() {
    let (cfg, mut st) = (server_cfg(), State::default());
    for i in 0..5 {
        lease(&cfg, &mut st, [2, 0, 0, 0, 1, i], T0);
    }
    // Full; a stranger's RELEASE does nothing.
    let m = with_opt(
        with_ciaddr(dhclient(Release, MAC1), ip(102)),
        DhcpOption::ServerIdentifier(SERVER_IP),
    );
    let out = run(&cfg, &mut st, &m, LocalPort::Dhcp, "10.1.0.102:68", T0);
    assert!(out.reply.is_none());
    assert!(run67(&cfg, &mut st, &dhclient(Discover, MAC1))
        .reply
        .is_none());
    // The owner's RELEASE frees it.
    let m = with_opt(
        with_ciaddr(dhclient(Release, [2, 0, 0, 0, 1, 2]), ip(102)),
        DhcpOption::ServerIdentifier(SERVER_IP),
    );
    let out = run(&cfg, &mut st, &m, LocalPort::Dhcp, "10.1.0.102:68", T0 + 10);
    assert!(out.reply.is_none(), "RELEASE has no reply");
    assert!(out.log.contains("released 10.1.0.102"), "{}", out.log);
    let w = wire(&run(
        &cfg,
        &mut st,
        &dhclient(Discover, MAC1),
        LocalPort::Dhcp,
        "0.0.0.0:68",
        T0 + 10,
    ));
    assert_eq!(w.yiaddr, ip(102));
}

#[test]
fn expired_leases_are_reused() {
    let (cfg, mut st) = (server_cfg(), State::default());
    for i in 0..5 {
        lease(&cfg, &mut st, [2, 0, 0, 0, 1, i], T0 + i as u64);
    }
    assert!(run67(&cfg, &mut st, &dhclient(Discover, MAC1))
        .reply
        .is_none());
    // After expiry the longest-expired address goes first.
    let later = T0 + 3600 + 10;
    assert_eq!(lease(&cfg, &mut st, MAC1, later), ip(100));
    assert_eq!(st.leases().len(), 5);
}

#[test]
fn decline_holds_the_address_back() {
    let (cfg, mut st) = (server_cfg(), State::default());
    let a = lease(&cfg, &mut st, MAC1, T0);
    let m = with_opt(
        with_opt(dhclient(Decline, MAC1), DhcpOption::RequestedIpAddress(a)),
        DhcpOption::ServerIdentifier(SERVER_IP),
    );
    let out = run67(&cfg, &mut st, &m);
    assert!(out.reply.is_none());
    assert!(out.log.contains("declined 10.1.0.100"), "{}", out.log);
    assert!(st.leases().by_ip(a).is_none());
    // Neither the client nor anyone else gets it during the hold...
    assert_eq!(
        wire(&run67(&cfg, &mut st, &dhclient(Discover, MAC1))).yiaddr,
        ip(101)
    );
    let w = wire(&run67(
        &cfg,
        &mut st,
        &selecting(dhclient(Request, MAC2), a),
    ));
    assert_eq!(w.msg_type(), NAK);
    // ...but after it.
    let m = with_opt(dhclient(Discover, MAC3), DhcpOption::RequestedIpAddress(a));
    let w = wire(&run(
        &cfg,
        &mut st,
        &m,
        LocalPort::Dhcp,
        "0.0.0.0:68",
        T0 + 601,
    ));
    assert_eq!(w.yiaddr, a);
    // A DECLINE for an address never given to the sender is ignored.
    let m = with_opt(
        dhclient(Decline, MAC2),
        DhcpOption::RequestedIpAddress(ip(104)),
    );
    assert!(run67(&cfg, &mut st, &m).reply.is_none());
    assert!(st.declined_until(ip(104)).is_none());
}

#[test]
fn inform_gets_config_without_address() {
    let (cfg, mut st) = (server_cfg(), State::default());
    let client = Ipv4Addr::new(10, 1, 0, 20);
    let m = with_ciaddr(dhclient(Inform, MAC1), client);
    let w = wire(&run(&cfg, &mut st, &m, LocalPort::Dhcp, "10.1.0.20:68", T0));
    assert_reply_basics(&w, &m);
    assert_eq!(w.msg_type(), ACK);
    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.ciaddr, client);
    assert_eq!(w.opt(51), None, "no lease time in an INFORM ACK");
    assert_eq!(w.opt(1), Some(&[255, 255, 255, 0][..]));
    assert_eq!(w.dest, sa("10.1.0.20:68"));
    assert!(st.leases().is_empty());
}

#[test]
fn pxe_clients_get_address_and_boot_options() {
    let (cfg, mut st) = (server_cfg(), State::default());
    // iPXE: address + script, 60 PXEClient (no 2-3 s wait for proxy offers).
    let w = wire(&run67(&cfg, &mut st, &ipxe(Discover, MAC1, 0)));
    assert_eq!(w.msg_type(), OFFER);
    assert_eq!(w.yiaddr, ip(100));
    assert_eq!(w.file, SCRIPT_URL);
    assert_eq!(w.opt_str(67).as_deref(), Some(SCRIPT_URL));
    assert_eq!(w.opt_str(60).as_deref(), Some("PXEClient"));
    assert_eq!(w.opt(43), None);
    assert_eq!(w.opt(97), Some(&uuid97()[..]));
    assert_eq!(w.opt(51), Some(&3600u32.to_be_bytes()[..]));
    // EDK2: address + ipxe.efi + 43.
    let w = wire(&run67(&cfg, &mut st, &edk2(Discover, MAC2)));
    assert_eq!(w.yiaddr, ip(101));
    assert_eq!(w.siaddr, SERVER_IP);
    assert_eq!(w.file, "ipxe.efi");
    assert_eq!(w.opt_str(66).as_deref(), Some("10.1.0.2"));
    assert_eq!(w.opt(43), Some(&[6, 1, 8, 255][..]));
    // ...and the same in the ACK.
    let w = wire(&run67(
        &cfg,
        &mut st,
        &selecting(edk2(Request, MAC2), ip(101)),
    ));
    assert_eq!((w.msg_type(), w.yiaddr), (ACK, ip(101)));
    assert_eq!(w.file, "ipxe.efi");
    assert_eq!(w.opt(43), Some(&[6, 1, 8, 255][..]));
    // HTTP boot: URL + HTTPClient.
    let w = wire(&run67(&cfg, &mut st, &http_boot(Discover, MAC3)));
    assert_eq!(w.yiaddr, ip(102));
    assert_eq!(w.file, "http://10.1.0.2:8080/ipxe.efi");
    assert_eq!(w.opt_str(60).as_deref(), Some("HTTPClient"));
    // arm64 without a program: an address, no boot options, a reason.
    let out = run67(&cfg, &mut st, &arm64(Discover, [2, 0, 0, 0, 0, 9]));
    let w = wire(&out);
    assert_eq!(w.yiaddr, ip(103));
    for code in [43, 60, 66, 67] {
        assert_eq!(w.opt(code), None);
    }
    assert_eq!(w.file, "");
    assert!(
        out.log
            .contains("no boot file: no boot program for arch EFI arm64"),
        "{}",
        out.log
    );
}

#[test]
fn snponly_by_config_in_server_mode() {
    let cfg = DhcpConfig {
        boot_files: BootFiles {
            efi_x64: "snponly.efi".into(),
            ..boot_files()
        },
        ..server_cfg()
    };
    let w = wire(&run67(&cfg, &mut State::default(), &edk2(Discover, MAC2)));
    assert_eq!(w.file, "snponly.efi");
}

#[test]
fn relayed_packets_go_to_giaddr_67() {
    let (cfg, mut st) = (server_cfg(), State::default());
    let relay = Ipv4Addr::new(10, 3, 0, 1);
    let w = wire(&run(
        &cfg,
        &mut st,
        &with_giaddr(edk2(Discover, MAC2), relay),
        LocalPort::Dhcp,
        "10.3.0.1:67",
        T0,
    ));
    assert_eq!(w.dest, sa("10.3.0.1:67"));
    assert_eq!(w.giaddr, relay);
    assert_eq!(w.yiaddr, ip(100));
    let r = with_giaddr(selecting(edk2(Request, MAC2), ip(100)), relay);
    let w = wire(&run(&cfg, &mut st, &r, LocalPort::Dhcp, "10.3.0.1:67", T0));
    assert_eq!((w.msg_type(), w.dest), (ACK, sa("10.3.0.1:67")));
    // A relayed NAK also goes to the relay, with the broadcast bit set.
    let r = with_giaddr(
        with_opt(
            dhclient(Request, MAC3),
            DhcpOption::RequestedIpAddress(ip(250)),
        ),
        relay,
    );
    let w = wire(&run(&cfg, &mut st, &r, LocalPort::Dhcp, "10.3.0.1:67", T0));
    assert_eq!((w.msg_type(), w.dest), (NAK, sa("10.3.0.1:67")));
    assert_eq!(w.flags & 0x8000, 0x8000);
}

#[test]
fn port_4011_works_in_server_mode_too() {
    let (cfg, mut st) = (server_cfg(), State::default());
    let m = with_ciaddr(edk2(Request, MAC2), ip(100));
    let w = wire(&run(&cfg, &mut st, &m, LocalPort::Pxe, "10.1.0.100:68", T0));
    assert_eq!(
        (w.msg_type(), w.yiaddr, w.file.as_str()),
        (ACK, Ipv4Addr::UNSPECIFIED, "ipxe.efi")
    );
    assert!(st.leases().is_empty(), "port 4011 never leases");
}

#[test]
fn server_mode_from_config_file_text() {
    let cfg: DhcpConfig = serde_json::from_str(
        r#"{"server_ip":"10.1.0.2","mode":{"server":{"range_start":"10.1.0.100","range_end":"10.1.0.101","subnet_mask":"255.255.255.0"}}}"#,
    )
    .unwrap();
    let cfg = cfg.finalize().unwrap();
    assert!(matches!(cfg.mode, DhcpMode::Server(_)));
    let w = wire(&run67(
        &cfg,
        &mut State::default(),
        &ipxe(Discover, MAC1, 0),
    ));
    assert_eq!(w.yiaddr, ip(100));
    assert_eq!(w.file, "http://10.1.0.2/boot.ipxe", "default script URL");
    assert_eq!(w.opt(3), None, "no router configured");
}
