//! Packet builders that mimic real clients, and helpers to read replies off
//! the wire.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dhcproto::v4::{
    Architecture, DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode, UnknownOption,
};
use dhcproto::Encodable;

use crate::dhcp::config::{DhcpConfig, DhcpMode, PoolConfig};
use crate::dhcp::decide::LocalPort;
use crate::dhcp::handler::{process, Inbound, Outcome};
use crate::dhcp::reply;
use crate::dhcp::state::State;
use crate::dhcp::BootFiles;

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
pub const SITE_DHCP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const SCRIPT_URL: &str = "http://10.1.0.2:8080/boot.ipxe";
pub const T0: u64 = 1_700_000_000;
pub const BCAST68: &str = "255.255.255.255:68";

pub const MAC1: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x01];
pub const MAC2: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x02];
pub const MAC3: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x03];

/// Option 97 as firmware sends it: type 0 + 16-byte GUID.
pub fn uuid97() -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend((0..16).map(|i| 0xa0 + i as u8));
    v
}

pub fn boot_files() -> BootFiles {
    BootFiles {
        ipxe_script_url: "http://{server_ip}:8080/boot.ipxe".into(),
        http_base_url: "http://{server_ip}:8080".into(),
        ..BootFiles::default()
    }
}

pub fn proxy_cfg() -> DhcpConfig {
    DhcpConfig {
        mode: DhcpMode::Proxy,
        server_ip: SERVER_IP,
        boot_files: boot_files(),
        ..DhcpConfig::default()
    }
    .finalize()
    .unwrap()
}

pub fn pool() -> PoolConfig {
    PoolConfig {
        range_start: Ipv4Addr::new(10, 1, 0, 100),
        range_end: Ipv4Addr::new(10, 1, 0, 104),
        subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
        router: Some(Ipv4Addr::new(10, 1, 0, 1)),
        dns_servers: vec![Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 3)],
        domain_name: Some("lab.test".into()),
        lease_time_secs: 3600,
        lease_file: None,
        decline_hold_secs: 600,
    }
}

pub fn server_cfg() -> DhcpConfig {
    DhcpConfig {
        mode: DhcpMode::Server(pool()),
        server_ip: SERVER_IP,
        boot_files: boot_files(),
        ..DhcpConfig::default()
    }
    .finalize()
    .unwrap()
}

fn base(mac: [u8; 6], xid: u32, t: MessageType, broadcast: bool) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_chaddr(&mac)
        .set_xid(xid)
        .set_secs(4);
    if broadcast {
        m.set_flags(Flags::default().set_broadcast());
    }
    m.opts_mut().insert(DhcpOption::MessageType(t));
    m
}

fn prl(codes: &[u8]) -> DhcpOption {
    DhcpOption::ParameterRequestList(codes.iter().map(|c| OptionCode::from(*c)).collect())
}

/// iPXE as the NIC ROM sends it (BIOS: arch 0; UEFI: arch 7).
pub fn ipxe(t: MessageType, mac: [u8; 6], arch: u16) -> Message {
    let mut m = base(mac, 0x1b2c_3d00 | arch as u32, t, true);
    let o = m.opts_mut();
    o.insert(DhcpOption::MaxMessageSize(1472));
    o.insert(DhcpOption::ClientSystemArchitecture(Architecture(arch)));
    o.insert(DhcpOption::ClientNetworkInterface(1, 2, 1));
    o.insert(DhcpOption::ClientMachineIdentifier(uuid97()));
    o.insert(DhcpOption::ClassIdentifier(
        format!("PXEClient:Arch:{arch:05}:UNDI:002001").into_bytes(),
    ));
    o.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
    o.insert(DhcpOption::Unknown(UnknownOption::new(
        OptionCode::from(175),
        vec![
            0xb1, 0x05, 0x01, 0x1a, 0xf4, 0x10, 0x00, 0x13, 0x01, 0x01, 0x11, 0x01, 0x01,
        ],
    )));
    o.insert(prl(&[
        1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 175, 203,
    ]));
    let mut cid = vec![1];
    cid.extend_from_slice(&mac);
    o.insert(DhcpOption::ClientIdentifier(cid));
    m
}

/// EDK2/OVMF's own PXE client (no user class), arch 7.
pub fn edk2(t: MessageType, mac: [u8; 6]) -> Message {
    firmware(t, mac, 7, "PXEClient:Arch:00007:UNDI:003000")
}

/// A PXE firmware client of any arch with the given option 60.
pub fn firmware(t: MessageType, mac: [u8; 6], arch: u16, vendor: &str) -> Message {
    let mut m = base(mac, 0x0ed2_0000 | arch as u32, t, true);
    let o = m.opts_mut();
    o.insert(DhcpOption::MaxMessageSize(1472));
    o.insert(prl(&[
        1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60,
        66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135,
    ]));
    o.insert(DhcpOption::ClientMachineIdentifier(uuid97()));
    o.insert(DhcpOption::ClientNetworkInterface(1, 3, 0));
    o.insert(DhcpOption::ClientSystemArchitecture(Architecture(arch)));
    o.insert(DhcpOption::ClassIdentifier(vendor.as_bytes().to_vec()));
    m
}

/// UEFI HTTP boot (EDK2 HttpBootDxe), arch 16.
pub fn http_boot(t: MessageType, mac: [u8; 6]) -> Message {
    firmware(t, mac, 16, "HTTPClient:Arch:00016:UNDI:003001")
}

/// arm64 UEFI PXE, arch 11.
pub fn arm64(t: MessageType, mac: [u8; 6]) -> Message {
    firmware(t, mac, 11, "PXEClient:Arch:00011:UNDI:003000")
}

/// Linux dhclient: no option 60, no broadcast flag.
pub fn dhclient(t: MessageType, mac: [u8; 6]) -> Message {
    let mut m = base(mac, 0xdc00_0000 | mac[5] as u32, t, false);
    let o = m.opts_mut();
    o.insert(prl(&[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]));
    o.insert(DhcpOption::Hostname("labhost".into()));
    let mut cid = vec![1];
    cid.extend_from_slice(&mac);
    o.insert(DhcpOption::ClientIdentifier(cid));
    m
}

pub fn with_opt(mut m: Message, o: DhcpOption) -> Message {
    m.opts_mut().insert(o);
    m
}

pub fn with_ciaddr(mut m: Message, ip: Ipv4Addr) -> Message {
    m.set_ciaddr(ip);
    m
}

pub fn with_giaddr(mut m: Message, ip: Ipv4Addr) -> Message {
    m.set_giaddr(ip);
    m
}

pub fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Run one client packet through the handler.
pub fn run(
    cfg: &DhcpConfig,
    st: &mut State,
    m: &Message,
    port: LocalPort,
    src: &str,
    now: u64,
) -> Outcome {
    let data = bytes(m);
    process(
        cfg,
        st,
        &Inbound {
            data: &data,
            src: sa(src),
            port,
            now: at(now),
        },
    )
}

/// Packet on port 67 from an unconfigured client.
pub fn run67(cfg: &DhcpConfig, st: &mut State, m: &Message) -> Outcome {
    run(cfg, st, m, LocalPort::Dhcp, "0.0.0.0:68", T0)
}

/// A reply as it goes on the wire, parsed back: header fields and raw options.
#[derive(Debug)]
pub struct Wire {
    pub bytes: Vec<u8>,
    pub op: u8,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub file: String,
    pub opts: BTreeMap<u8, Vec<u8>>,
    pub dest: SocketAddr,
}

impl Wire {
    pub fn opt(&self, code: u8) -> Option<&[u8]> {
        self.opts.get(&code).map(|v| v.as_slice())
    }
    pub fn opt_str(&self, code: u8) -> Option<String> {
        self.opt(code)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    }
    pub fn msg_type(&self) -> u8 {
        self.opt(53).unwrap()[0]
    }
}

pub const OFFER: u8 = 2;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

/// The reply of an outcome, encoded exactly as the listener does and parsed
/// back by hand (not by dhcproto).
pub fn wire(out: &Outcome) -> Wire {
    let (msg, dest) = out
        .reply
        .as_ref()
        .unwrap_or_else(|| panic!("expected a reply: {}", out.log));
    let b = reply::encode(msg).unwrap();
    assert!(b.len() >= 300, "reply shorter than 300 bytes");
    let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
    let file_raw = &b[108..236];
    let file_end = file_raw.iter().position(|&c| c == 0).unwrap_or(128);
    assert_eq!(&b[236..240], &[99, 130, 83, 99]);
    let mut opts: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut i = 240;
    loop {
        match b[i] {
            0 => i += 1,
            255 => break,
            c => {
                let l = b[i + 1] as usize;
                opts.entry(c)
                    .or_default()
                    .extend_from_slice(&b[i + 2..i + 2 + l]);
                i += 2 + l;
            }
        }
    }
    Wire {
        op: b[0],
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        flags: u16::from_be_bytes([b[10], b[11]]),
        ciaddr: ip(12),
        yiaddr: ip(16),
        siaddr: ip(20),
        giaddr: ip(24),
        chaddr: b[28..34].try_into().unwrap(),
        file: String::from_utf8(file_raw[..file_end].to_vec()).unwrap(),
        opts,
        dest: *dest,
        bytes: b,
    }
}

/// Checks every reply to a client shares: BOOTREPLY, same xid/chaddr, our id.
pub fn assert_reply_basics(w: &Wire, m: &Message) {
    assert_eq!(w.op, 2, "BOOTREPLY");
    assert_eq!(w.xid, m.xid());
    assert_eq!(&w.chaddr[..], m.chaddr());
    assert_eq!(w.opt(54), Some(&SERVER_IP.octets()[..]), "option 54");
    assert_eq!(w.bytes[1], 1, "htype");
    assert_eq!(w.bytes[2], 6, "hlen");
}
