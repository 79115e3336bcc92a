//! The pure packet handler: validate → decide → build, plus the one log line
//! per transaction. No sockets, no files: the listener does those.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::SystemTime;

use dhcproto::v4::{Message, MessageType};

use super::arch::BootAnswer;
use super::config::{DhcpConfig, DhcpMode};
use super::decide::{decide, Decision, LocalPort};
use super::reply;
use super::request::{msg_type_name, BootRequest};
use super::state::{unix_secs, State};
use crate::clients::{DhcpAnswer, DhcpSeen};

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub data: &'a [u8],
    /// Sender address and port.
    pub src: SocketAddr,
    /// Which of our sockets received it.
    pub port: LocalPort,
    pub now: SystemTime,
}

/// What happened to one datagram.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The reply and where to send it.
    pub reply: Option<(Message, SocketAddr)>,
    /// The dnsmasq-style log line.
    pub log: String,
    /// Log at debug (junk, other people's traffic) rather than info.
    pub quiet: bool,
    /// What the client record learns from it (none for junk).
    pub seen: Option<DhcpSeen>,
}

/// Handle one datagram and log it; the outcome holds the reply to send, if any.
pub fn handle(cfg: &DhcpConfig, state: &mut State, pkt: &Inbound<'_>) -> Outcome {
    // The line carries the client's MAC as a field (`--log-format json`), read as sent even
    // from a packet the parser refuses.
    let _span = tracing::info_span!(
        "dhcp",
        mac = client_mac(pkt.data).map(tracing::field::display)
    )
    .entered();
    let out = process(cfg, state, pkt);
    if out.quiet {
        tracing::debug!("dhcp: {}", out.log);
    } else {
        tracing::info!("dhcp: {}", out.log);
    }
    out
}

/// The BOOTP client hardware address (chaddr) of an Ethernet request.
fn client_mac(data: &[u8]) -> Option<super::MacAddr> {
    // op, htype 1 (Ethernet), hlen 6; chaddr starts at byte 28.
    if data.get(1..3) != Some(&[1, 6]) {
        return None;
    }
    Some(super::MacAddr(data.get(28..34)?.try_into().ok()?))
}

/// [`handle`] without the logging, for tests and callers that log themselves.
pub fn process(cfg: &DhcpConfig, state: &mut State, pkt: &Inbound<'_>) -> Outcome {
    if cfg.mode == DhcpMode::Off {
        return Outcome {
            reply: None,
            log: "DHCP is off".into(),
            quiet: true,
            seen: None,
        };
    }
    let (msg, req) = match BootRequest::parse(pkt.data) {
        Ok(x) => x,
        Err(e) => {
            return Outcome {
                reply: None,
                log: format!("{} bytes from {}: {e}", pkt.data.len(), pkt.src),
                quiet: !e.is_suspicious(),
                seen: None,
            }
        }
    };
    let decision = decide(cfg, state, &req, pkt.port, unix_secs(pkt.now));
    let reply = build(cfg, &msg, &req, &decision, pkt.src);
    let log = log_line(&req, pkt.port, &decision, reply.as_ref());
    let quiet = matches!(decision, Decision::Ignore { quiet: true, .. });
    let seen = seen(cfg, &req, &decision);
    Outcome {
        reply,
        log,
        quiet,
        seen,
    }
}

/// The client record's view of a decision: answered with boot information, or why not.
/// RELEASE and DECLINE are lease bookkeeping, not boot steps.
fn seen(cfg: &DhcpConfig, req: &BootRequest, d: &Decision) -> Option<DhcpSeen> {
    let answer = |boot: &Option<BootAnswer>, note: &Option<String>| match boot {
        Some(_) => DhcpAnswer::Boot,
        None => DhcpAnswer::AddressOnly(
            note.clone()
                .unwrap_or_else(|| "not a boot client".to_string()),
        ),
    };
    let (ip, answer) = match d {
        Decision::ProxyOffer(_) | Decision::BootAck(_) => (None, DhcpAnswer::Boot),
        Decision::Offer { ip, boot, note } | Decision::Ack { ip, boot, note } => {
            (Some(*ip), answer(boot, note))
        }
        Decision::InformAck { boot, note } => (None, answer(boot, note)),
        Decision::Ignore { reason, quiet } => (
            None,
            DhcpAnswer::Ignored {
                reason: reason.clone(),
                quiet: *quiet,
            },
        ),
        Decision::Nak { reason } => (None, DhcpAnswer::Nak(reason.clone())),
        Decision::Released(_) | Decision::Declined(_) => return None,
    };
    let ip = ip.or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
    Some(DhcpSeen {
        mac: req.mac,
        mode: match cfg.mode {
            DhcpMode::Server(_) => "server",
            _ => "proxy",
        },
        arch: req.arch,
        vendor: req.vendor_class.to_string(),
        boot_client: req.vendor_class.is_boot_client(),
        ipxe: req.is_ipxe,
        ip,
        answer,
    })
}

/// Turn a decision into a message and a destination.
fn build(
    cfg: &DhcpConfig,
    msg: &Message,
    req: &BootRequest,
    d: &Decision,
    src: SocketAddr,
) -> Option<(Message, SocketAddr)> {
    let ip = cfg.server_ip;
    let pool = match &cfg.mode {
        DhcpMode::Server(p) => Some(p),
        _ => None,
    };
    let dest = |t| reply::destination(req, t, cfg);
    match d {
        Decision::ProxyOffer(b) => Some((
            reply::proxy_offer(msg, req, b, ip),
            dest(MessageType::Offer),
        )),
        Decision::BootAck(b) => Some((reply::boot_ack(msg, req, b, ip), src)),
        Decision::Offer { ip: yi, boot, .. } => Some((
            reply::lease_reply(msg, req, MessageType::Offer, *yi, pool?, boot.as_ref(), ip),
            dest(MessageType::Offer),
        )),
        Decision::Ack { ip: yi, boot, .. } => Some((
            reply::lease_reply(msg, req, MessageType::Ack, *yi, pool?, boot.as_ref(), ip),
            dest(MessageType::Ack),
        )),
        Decision::InformAck { boot, .. } => {
            let to = if !req.giaddr.is_unspecified() || !req.ciaddr.is_unspecified() {
                dest(MessageType::Ack)
            } else {
                // INFORM without ciaddr: answer the address it came from.
                let from = match src {
                    SocketAddr::V4(a) => *a.ip(),
                    SocketAddr::V6(_) => Ipv4Addr::BROADCAST,
                };
                SocketAddr::V4(SocketAddrV4::new(from, cfg.client_port))
            };
            Some((reply::inform_ack(msg, req, pool?, boot.as_ref(), ip), to))
        }
        Decision::Nak { reason } => {
            Some((reply::nak(msg, req, reason, ip), dest(MessageType::Nak)))
        }
        Decision::Ignore { .. } | Decision::Released(_) | Decision::Declined(_) => None,
    }
}

/// `52:54:00:12:34:56 xid=0x1234abcd DISCOVER port 67 arch=BIOS x86 vendor=PXEClient iPXE: ...`
fn log_line(
    req: &BootRequest,
    port: LocalPort,
    d: &Decision,
    reply: Option<&(Message, SocketAddr)>,
) -> String {
    let port = match port {
        LocalPort::Dhcp => "67",
        LocalPort::Pxe => "4011",
    };
    let head = format!(
        "{} xid={:#010x} {} port {port} arch={} vendor={} {}",
        req.mac,
        req.xid,
        msg_type_name(req.msg_type),
        req.arch_name(),
        req.vendor_class,
        req.client_kind(),
    );
    let to = reply.map(|(_, a)| format!(" to {a}")).unwrap_or_default();
    let boot = |b: &Option<BootAnswer>, note: &Option<String>| match (b, note) {
        (Some(b), _) => format!(", {} ({})", boot_text(b), boot_why(req)),
        (None, Some(n)) => format!(", no boot file: {n}"),
        (None, None) => String::new(),
    };
    let what = match d {
        Decision::Ignore { reason, .. } => format!("no answer: {reason}"),
        Decision::ProxyOffer(b) => format!("proxy OFFER {}{to} ({})", boot_text(b), boot_why(req)),
        Decision::BootAck(b) => format!("boot server ACK {}{to} ({})", boot_text(b), boot_why(req)),
        Decision::Offer { ip, boot: b, note } => format!("OFFER {ip}{}{to}", boot(b, note)),
        Decision::Ack { ip, boot: b, note } => format!("ACK {ip}{}{to}", boot(b, note)),
        Decision::InformAck { boot: b, note } => format!("INFORM ACK{}{to}", boot(b, note)),
        Decision::Nak { reason } => format!("NAK{to}: {reason}"),
        Decision::Released(ip) => format!("released {ip}"),
        Decision::Declined(ip) => format!("declined {ip}: held back from the pool"),
    };
    format!("{head}: {what}")
}

fn boot_text(b: &BootAnswer) -> String {
    match b {
        BootAnswer::TftpFile(f) => format!("tftp file {f}"),
        BootAnswer::HttpUrl(u) => format!("url {u}"),
        BootAnswer::Pxelinux {
            file,
            config,
            path_prefix,
        } => {
            format!("tftp file {file} (PXELINUX, config {config} from {path_prefix})")
        }
        BootAnswer::None(r) => format!("nothing ({r})"),
    }
}

fn boot_why(req: &BootRequest) -> String {
    if req.is_ipxe {
        "iPXE gets its boot script".into()
    } else if req.is_http_client() {
        format!("UEFI HTTP boot, {}", req.arch_name())
    } else {
        format!("boot program for {}", req.arch_name())
    }
}

#[cfg(test)]
mod log_field_tests {
    use super::*;

    /// The MAC of the JSON log field is the one the client sent, also in a packet the parser
    /// refuses; a header that is not Ethernet BOOTP gives none.
    #[test]
    fn client_mac_is_the_sent_chaddr() {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        // op BOOTREQUEST, htype Ethernet, hlen 6, chaddr at 28; no magic cookie, no options.
        let mut bytes = vec![0u8; 236];
        bytes[..3].copy_from_slice(&[1, 1, 6]);
        bytes[28..34].copy_from_slice(&mac);
        assert!(BootRequest::parse(&bytes).is_err());
        assert_eq!(client_mac(&bytes), Some(super::super::MacAddr(mac)));
        bytes[2] = 16;
        assert_eq!(client_mac(&bytes), None);
        bytes[2] = 6;
        assert_eq!(client_mac(&bytes[..30]), None);
    }
}
