//! Step 3 of 3: build the reply message and pick where it goes.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use dhcproto::v4::{
    DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode, UnknownOption,
};

use super::arch::BootAnswer;
use super::config::{DhcpConfig, PoolConfig};
use super::request::{BootRequest, PXE_BOOT_ITEM};

/// PXE sub-option 6, discovery control.
pub const PXE_DISCOVERY_CONTROL: u8 = 6;
/// Bit 3 of discovery control: "boot file name in this packet: download it,
/// no boot server discovery, no menu".
pub const PXE_USE_BOOTFILE: u8 = 0x08;

/// Largest string put in the 128-byte `file` field (NUL-terminated).
const FILE_FIELD_MAX: usize = 127;

/// A reply skeleton: BOOTREPLY for the client's chaddr/xid/flags/giaddr with
/// message type and server identifier.
pub fn base(msg: &Message, req: &BootRequest, mtype: MessageType, server_ip: Ipv4Addr) -> Message {
    let mut r = Message::default();
    r.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_chaddr(&req.mac.0)
        .set_xid(req.xid)
        .set_flags(msg.flags())
        .set_giaddr(req.giaddr)
        .set_siaddr(server_ip);
    let o = r.opts_mut();
    o.insert(DhcpOption::MessageType(mtype));
    o.insert(DhcpOption::ServerIdentifier(server_ip));
    // RFC 3046: a relay agent's option 82 is echoed back.
    if !req.giaddr.is_unspecified() {
        if let Some(opt82) = msg.opts().get(OptionCode::RelayAgentInformation) {
            o.insert(opt82.clone());
        }
    }
    r
}

/// Option 43 for PXE firmware: discovery control "use the boot file in this
/// packet", plus the boot item echoed when the client sent one (port 4011).
pub fn pxe_vendor_options(req: &BootRequest) -> Vec<u8> {
    let mut v = vec![PXE_DISCOVERY_CONTROL, 1, PXE_USE_BOOTFILE];
    if let Some(item) = req.pxe_boot_item {
        v.extend_from_slice(&[PXE_BOOT_ITEM, 4]);
        v.extend_from_slice(&item);
    }
    v.push(255);
    v
}

/// Boot options for a PXE/HTTP boot client: 60, 97, 43 (firmware only), the
/// file field, 66 and 67. `boot` must not be `BootAnswer::None`.
pub fn add_boot_options(
    r: &mut Message,
    req: &BootRequest,
    boot: &BootAnswer,
    server_ip: Ipv4Addr,
) {
    let name = match boot {
        BootAnswer::TftpFile(f) => f,
        BootAnswer::HttpUrl(u) => u,
        BootAnswer::Pxelinux { file, .. } => file,
        BootAnswer::None(_) => return,
    };
    let vendor: &[u8] = if req.is_http_client() {
        b"HTTPClient"
    } else {
        b"PXEClient"
    };
    let o = r.opts_mut();
    o.insert(DhcpOption::ClassIdentifier(vendor.to_vec()));
    if let Some(uuid) = &req.client_uuid {
        o.insert(DhcpOption::ClientMachineIdentifier(uuid.clone()));
    }
    if req.is_pxe_firmware() {
        o.insert(DhcpOption::VendorExtensions(pxe_vendor_options(req)));
    }
    o.insert(DhcpOption::BootfileName(name.as_bytes().to_vec()));
    if let BootAnswer::Pxelinux {
        config,
        path_prefix,
        ..
    } = boot
    {
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(209),
            config.as_bytes().to_vec(),
        )));
        o.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(210),
            path_prefix.as_bytes().to_vec(),
        )));
    }
    if let BootAnswer::TftpFile(_) | BootAnswer::Pxelinux { .. } = boot {
        o.insert(DhcpOption::TFTPServerName(
            server_ip.to_string().into_bytes(),
        ));
    }
    r.set_siaddr(server_ip);
    // A URL longer than the file field travels in option 67 only.
    if name.len() <= FILE_FIELD_MAX {
        r.set_fname_str(name);
    }
}

/// Network options of the pool; lease times unless answering an INFORM.
pub fn add_pool_options(r: &mut Message, pool: &PoolConfig, with_lease_time: bool) {
    let o = r.opts_mut();
    o.insert(DhcpOption::SubnetMask(pool.subnet_mask));
    o.insert(DhcpOption::BroadcastAddr(pool.broadcast_addr()));
    if let Some(gw) = pool.router {
        o.insert(DhcpOption::Router(vec![gw]));
    }
    if !pool.dns_servers.is_empty() {
        o.insert(DhcpOption::DomainNameServer(pool.dns_servers.clone()));
    }
    if let Some(d) = &pool.domain_name {
        o.insert(DhcpOption::DomainName(d.clone()));
    }
    if with_lease_time {
        let t = pool.lease_time_secs;
        o.insert(DhcpOption::AddressLeaseTime(t));
        o.insert(DhcpOption::Renewal(t / 2));
        o.insert(DhcpOption::Rebinding((t as u64 * 7 / 8) as u32));
    }
}

/// proxyDHCP OFFER: no address (yiaddr 0.0.0.0), boot information only.
pub fn proxy_offer(
    msg: &Message,
    req: &BootRequest,
    boot: &BootAnswer,
    server_ip: Ipv4Addr,
) -> Message {
    let mut r = base(msg, req, MessageType::Offer, server_ip);
    add_boot_options(&mut r, req, boot, server_ip);
    r
}

/// ACK to a PXE boot server REQUEST on port 4011: the boot file, no address.
pub fn boot_ack(
    msg: &Message,
    req: &BootRequest,
    boot: &BootAnswer,
    server_ip: Ipv4Addr,
) -> Message {
    let mut r = base(msg, req, MessageType::Ack, server_ip);
    r.set_ciaddr(req.ciaddr);
    add_boot_options(&mut r, req, boot, server_ip);
    r
}

/// Server mode OFFER (`mtype` Offer) or ACK (`mtype` Ack) of `ip`.
pub fn lease_reply(
    msg: &Message,
    req: &BootRequest,
    mtype: MessageType,
    ip: Ipv4Addr,
    pool: &PoolConfig,
    boot: Option<&BootAnswer>,
    server_ip: Ipv4Addr,
) -> Message {
    let mut r = base(msg, req, mtype, server_ip);
    r.set_yiaddr(ip);
    if mtype == MessageType::Ack {
        r.set_ciaddr(req.ciaddr);
    }
    add_pool_options(&mut r, pool, true);
    if let Some(b) = boot {
        add_boot_options(&mut r, req, b, server_ip);
    }
    r
}

/// ACK to an INFORM: configuration only, no yiaddr, no lease time.
pub fn inform_ack(
    msg: &Message,
    req: &BootRequest,
    pool: &PoolConfig,
    boot: Option<&BootAnswer>,
    server_ip: Ipv4Addr,
) -> Message {
    let mut r = base(msg, req, MessageType::Ack, server_ip);
    r.set_ciaddr(req.ciaddr);
    add_pool_options(&mut r, pool, false);
    if let Some(b) = boot {
        add_boot_options(&mut r, req, b, server_ip);
    }
    r
}

/// NAK with the reason in option 56. Relayed NAKs carry the broadcast bit.
pub fn nak(msg: &Message, req: &BootRequest, reason: &str, server_ip: Ipv4Addr) -> Message {
    let mut r = base(msg, req, MessageType::Nak, server_ip);
    r.set_siaddr(Ipv4Addr::UNSPECIFIED);
    if !req.giaddr.is_unspecified() {
        r.set_flags(Flags::default().set_broadcast());
    }
    r.opts_mut().insert(DhcpOption::Message(reason.to_string()));
    r
}

/// Where a reply on the DHCP port goes (RFC 2131 4.1): the relay agent, else
/// broadcast for NAKs and clients without an address, else the client's
/// address. (Unicast to a client without an address would need ARP injection;
/// broadcasting instead is what clients accept.)
pub fn destination(req: &BootRequest, mtype: MessageType, cfg: &DhcpConfig) -> SocketAddr {
    let to = |ip: Ipv4Addr, port: u16| SocketAddr::V4(SocketAddrV4::new(ip, port));
    if !req.giaddr.is_unspecified() {
        return to(req.giaddr, cfg.dhcp_port);
    }
    if mtype == MessageType::Nak || req.ciaddr.is_unspecified() || req.broadcast {
        return to(Ipv4Addr::BROADCAST, cfg.client_port);
    }
    to(req.ciaddr, cfg.client_port)
}

/// Smallest BOOTP message (RFC 1542); some PXE ROMs drop shorter replies.
pub const MIN_REPLY_LEN: usize = 300;

/// Encode a reply for the wire, zero-padded (Pad options) to 300 bytes.
pub fn encode(msg: &Message) -> Result<Vec<u8>, dhcproto::error::EncodeError> {
    use dhcproto::Encodable;
    let mut bytes = msg.to_vec()?;
    if bytes.len() < MIN_REPLY_LEN {
        bytes.resize(MIN_REPLY_LEN, 0);
    }
    Ok(bytes)
}
