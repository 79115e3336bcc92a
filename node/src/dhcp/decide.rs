//! Step 2 of 3: given a valid request, decide what to do. No I/O; server mode
//! updates the lease table in `State` (the listener persists it).

use std::net::Ipv4Addr;

use dhcproto::v4::MessageType;

use super::arch::{select_boot, BootAnswer};
use super::config::{DhcpConfig, DhcpMode, PoolConfig};
use super::pool;
use super::request::{msg_type_name, BootRequest};
use super::state::{State, OFFER_HOLD_SECS};

/// Which of our sockets a packet arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalPort {
    /// The DHCP server port, 67.
    Dhcp,
    /// The PXE boot server port, 4011.
    Pxe,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No reply. `quiet`: log at debug rather than info.
    Ignore { reason: String, quiet: bool },
    /// proxyDHCP OFFER with boot information.
    ProxyOffer(BootAnswer),
    /// ACK to a boot server REQUEST on port 4011.
    BootAck(BootAnswer),
    /// Server mode OFFER. `boot` is `None` for clients that get only an
    /// address; `note` says why a boot client got no boot program.
    Offer {
        ip: Ipv4Addr,
        boot: Option<BootAnswer>,
        note: Option<String>,
    },
    /// Server mode ACK, same fields as `Offer`.
    Ack {
        ip: Ipv4Addr,
        boot: Option<BootAnswer>,
        note: Option<String>,
    },
    /// ACK to an INFORM (no address).
    InformAck {
        boot: Option<BootAnswer>,
        note: Option<String>,
    },
    /// NAK of a REQUEST.
    Nak { reason: String },
    /// RELEASE processed; no reply.
    Released(Ipv4Addr),
    /// DECLINE processed; no reply.
    Declined(Ipv4Addr),
}

fn ignore(reason: impl Into<String>) -> Decision {
    Decision::Ignore {
        reason: reason.into(),
        quiet: false,
    }
}

/// Decide for one validated request. `now` is Unix seconds.
pub fn decide(
    cfg: &DhcpConfig,
    state: &mut State,
    req: &BootRequest,
    port: LocalPort,
    now: u64,
) -> Decision {
    if cfg.mode == DhcpMode::Proxy {
        if let Err(e) = req.require_boot_client() {
            // Site traffic we must stay out of: an info line per DISCOVER only.
            let quiet = req.msg_type != MessageType::Discover;
            return Decision::Ignore {
                reason: format!("{e} (proxy mode)"),
                quiet,
            };
        }
    }
    match (&cfg.mode, port) {
        (DhcpMode::Off, _) => Decision::Ignore {
            reason: "DHCP is off".into(),
            quiet: true,
        },
        (_, LocalPort::Pxe) => decide_boot_server(cfg, req),
        (DhcpMode::Proxy, LocalPort::Dhcp) => decide_proxy(cfg, req),
        (DhcpMode::Server(pool), LocalPort::Dhcp) => decide_server(cfg, pool, state, req, now),
    }
}

fn boot_for(cfg: &DhcpConfig, req: &BootRequest) -> BootAnswer {
    // UEFI firmware of a machine on the GRUB chain gets shim instead of iPXE; iPXE itself
    // (a ROM, or one already loaded) keeps getting its script.
    let grub_files = match &cfg.boot_files.grub {
        Some(g) if !req.is_ipxe => g.files_for(&req.mac, &cfg.boot_files),
        _ => None,
    };
    let files = grub_files.as_ref().unwrap_or(&cfg.boot_files);
    let answer = select_boot(req.arch, req.is_ipxe, req.is_http_client(), files);
    // BIOS firmware of a machine that uses PXELINUX gets lpxelinux.0 and its options instead.
    match (&answer, &cfg.boot_files.pxelinux) {
        (BootAnswer::TftpFile(f), Some(p))
            if *f == cfg.boot_files.bios && p.applies_to(&req.mac) =>
        {
            BootAnswer::Pxelinux {
                file: p.file.clone(),
                config: crate::boot::pxelinux::mac_config_name(&req.mac),
                path_prefix: p.path_prefix.clone(),
            }
        }
        _ => answer,
    }
}

/// Boot answer for server mode: (answer, reason none) for boot clients only.
fn server_boot(cfg: &DhcpConfig, req: &BootRequest) -> (Option<BootAnswer>, Option<String>) {
    if !req.vendor_class.is_boot_client() {
        return (None, None);
    }
    match boot_for(cfg, req) {
        BootAnswer::None(reason) => (None, Some(reason)),
        b => (Some(b), None),
    }
}

/// proxyDHCP on port 67: only DISCOVERs are ours; REQUESTs there belong to the
/// site's DHCP server.
fn decide_proxy(cfg: &DhcpConfig, req: &BootRequest) -> Decision {
    if req.msg_type != MessageType::Discover {
        return ignore(format!(
            "{} on port 67 belongs to the site DHCP server, ignored (proxy mode)",
            msg_type_name(req.msg_type)
        ));
    }
    match boot_for(cfg, req) {
        BootAnswer::None(reason) => ignore(reason),
        b => Decision::ProxyOffer(b),
    }
}

/// PXE boot server on port 4011 (both modes).
fn decide_boot_server(cfg: &DhcpConfig, req: &BootRequest) -> Decision {
    if !req.vendor_class.is_boot_client() {
        return ignore("not a PXE client, ignored (port 4011)");
    }
    if !matches!(req.msg_type, MessageType::Request | MessageType::Inform) {
        return ignore(format!(
            "{} on port 4011, ignored",
            msg_type_name(req.msg_type)
        ));
    }
    if let Some(sid) = req.server_id.filter(|s| *s != cfg.server_ip) {
        return ignore(format!("boot server request for {sid}, not us"));
    }
    match boot_for(cfg, req) {
        BootAnswer::None(reason) => ignore(reason),
        b => Decision::BootAck(b),
    }
}

/// Full DHCP server.
fn decide_server(
    cfg: &DhcpConfig,
    pool: &PoolConfig,
    state: &mut State,
    req: &BootRequest,
    now: u64,
) -> Decision {
    state.prune(now);
    let other_server = req.server_id.filter(|s| *s != cfg.server_ip);
    match req.msg_type {
        MessageType::Discover => {
            let Some(ip) = pool::choose(state, pool, cfg.server_ip, req.mac, req.requested_ip, now)
            else {
                return ignore("no free address in the pool");
            };
            state.offer(req.mac, ip, now + OFFER_HOLD_SECS);
            let (boot, note) = server_boot(cfg, req);
            Decision::Offer { ip, boot, note }
        }
        MessageType::Request => {
            if let Some(s) = other_server {
                state.withdraw_offer(req.mac);
                return ignore(format!("client chose server {s}"));
            }
            let ip = match (req.requested_ip, req.ciaddr) {
                (Some(ip), _) => ip,
                (None, ci) if !ci.is_unspecified() => ci,
                _ => return ignore("REQUEST without requested address or ciaddr"),
            };
            if let Err(why) = pool::check(state, pool, cfg.server_ip, req.mac, ip, now) {
                return Decision::Nak {
                    reason: format!("address {ip} {why}"),
                };
            }
            state.bind(req.mac, ip, now + u64::from(pool.lease_time_secs));
            state.withdraw_offer(req.mac);
            let (boot, note) = server_boot(cfg, req);
            Decision::Ack { ip, boot, note }
        }
        MessageType::Release => {
            if let Some(s) = other_server {
                return Decision::Ignore {
                    reason: format!("RELEASE for server {s}"),
                    quiet: true,
                };
            }
            let ip = req.ciaddr;
            match state.leases().by_ip(ip) {
                Some(l) if l.mac == req.mac => {
                    state.release(ip, now);
                    Decision::Released(ip)
                }
                _ => ignore(format!(
                    "RELEASE of {ip}, which is not leased to this client"
                )),
            }
        }
        MessageType::Decline => {
            if let Some(s) = other_server {
                return Decision::Ignore {
                    reason: format!("DECLINE for server {s}"),
                    quiet: true,
                };
            }
            let Some(ip) = req.requested_ip else {
                return ignore("DECLINE without the declined address (option 50)");
            };
            let leased = state.leases().by_ip(ip).is_some_and(|l| l.mac == req.mac);
            let offered = state.offer_of(req.mac).is_some_and(|(o, _)| o == ip);
            if !leased && !offered {
                return ignore(format!(
                    "DECLINE of {ip}, which was not given to this client"
                ));
            }
            state.withdraw_offer(req.mac);
            state.decline(ip, now + u64::from(pool.decline_hold_secs), leased);
            Decision::Declined(ip)
        }
        MessageType::Inform => {
            let (boot, note) = server_boot(cfg, req);
            Decision::InformAck { boot, note }
        }
        other => ignore(format!("{} from a client, ignored", msg_type_name(other))),
    }
}
