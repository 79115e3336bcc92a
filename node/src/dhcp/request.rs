//! Step 1 of 3: validate a packet and pull out what the decision needs.

use std::fmt;
use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};

use super::arch::ClientArch;
use super::mac::MacAddr;
use super::wire;

/// Option 175: iPXE's encapsulated options; only iPXE sends it.
pub const OPT_IPXE_ENCAP: u8 = 175;
/// PXE sub-option (inside option 43): boot item.
pub const PXE_BOOT_ITEM: u8 = 71;

/// Why a packet is not for us. Logged at debug, never answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("truncated packet: {0}")]
    Truncated(String),
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("not a BOOTREQUEST (op {0})")]
    NotBootRequest(u8),
    #[error("not Ethernet (htype {htype}, hlen {hlen})")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("no DHCP message type (plain BOOTP), ignored")]
    NoMessageType,
    #[error("not a PXE client (option 60 {0}), ignored")]
    NotPxeClient(String),
    /// Replies go to the relay address: one no relay agent can have would make the node
    /// send to itself, to a whole segment or to a multicast group on a stranger's behalf.
    #[error("relay address (giaddr) {0} is loopback, broadcast, multicast or reserved, not a relay agent's; dropped")]
    BadRelay(Ipv4Addr),
}

impl RequestError {
    /// Worth an operator's attention (someone sends crafted packets), not just junk.
    pub fn is_suspicious(&self) -> bool {
        matches!(self, Self::BadRelay(_))
    }
}

/// Whether `giaddr` is "no relay" or an address a relay agent could have.
pub fn valid_relay(giaddr: Ipv4Addr) -> bool {
    let first = giaddr.octets()[0];
    giaddr.is_unspecified()
        || !(giaddr.is_loopback() || giaddr.is_multicast() || first == 0 || first >= 240)
}

/// Option 60 as far as netboot cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorClass {
    /// `PXEClient...`: PXE firmware or iPXE.
    PxeClient,
    /// `HTTPClient...`: UEFI HTTP boot.
    HttpClient,
    /// Something else (e.g. `MSFT 5.0`, `udhcp 1.35`).
    Other(String),
    /// No option 60.
    Absent,
}

impl VendorClass {
    pub fn is_boot_client(&self) -> bool {
        matches!(self, Self::PxeClient | Self::HttpClient)
    }
}

impl fmt::Display for VendorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PxeClient => f.write_str("PXEClient"),
            Self::HttpClient => f.write_str("HTTPClient"),
            Self::Other(s) => write!(f, "{s:?}"),
            Self::Absent => f.write_str("none"),
        }
    }
}

/// Everything the decision and the reply need from a client packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRequest {
    pub mac: MacAddr,
    pub xid: u32,
    pub msg_type: MessageType,
    /// Option 93 (first entry), else parsed from option 60 `PXEClient:Arch:NNNNN`.
    pub arch: Option<ClientArch>,
    pub vendor_class: VendorClass,
    /// Option 77 user class "iPXE", or iPXE's option 175 present.
    pub is_ipxe: bool,
    /// Option 97 as sent (type byte + GUID), echoed back to PXE clients.
    pub client_uuid: Option<Vec<u8>>,
    /// PXE boot item (type, layer) from option 43 sub-option 71, if sent.
    pub pxe_boot_item: Option<[u8; 4]>,
    pub giaddr: Ipv4Addr,
    pub ciaddr: Ipv4Addr,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// BOOTP broadcast flag.
    pub broadcast: bool,
}

impl BootRequest {
    /// Bytes off the wire → validated request.
    pub fn parse(data: &[u8]) -> Result<(Message, BootRequest), RequestError> {
        let msg = wire::decode_message(data)?;
        let req = Self::from_message(&msg)?;
        Ok((msg, req))
    }

    /// Validate a decoded message. Non-PXE clients are accepted here (server
    /// mode serves them); proxy mode additionally calls [`Self::require_boot_client`].
    pub fn from_message(msg: &Message) -> Result<Self, RequestError> {
        if msg.opcode() != Opcode::BootRequest {
            return Err(RequestError::NotBootRequest(msg.opcode().into()));
        }
        // Check hlen before calling chaddr(): dhcproto slices chaddr by hlen.
        if msg.htype() != HType::Eth || msg.hlen() != 6 {
            return Err(RequestError::NotEthernet {
                htype: msg.htype().into(),
                hlen: msg.hlen(),
            });
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(msg.chaddr());
        let opts = msg.opts();
        let msg_type = opts.msg_type().ok_or(RequestError::NoMessageType)?;

        let vendor_raw = match opts.get(OptionCode::ClassIdentifier) {
            Some(DhcpOption::ClassIdentifier(v)) => Some(v.as_slice()),
            _ => None,
        };
        let vendor_class = match vendor_raw {
            None => VendorClass::Absent,
            Some(v) if v.starts_with(b"PXEClient") => VendorClass::PxeClient,
            Some(v) if v.starts_with(b"HTTPClient") => VendorClass::HttpClient,
            Some(v) => VendorClass::Other(String::from_utf8_lossy(v).into_owned()),
        };
        let arch = match opts.get(OptionCode::ClientSystemArchitecture) {
            Some(DhcpOption::ClientSystemArchitecture(a)) => Some(ClientArch::from_code(a.0)),
            _ => vendor_raw.and_then(arch_from_vendor_class),
        };
        let user_class_ipxe = match opts.get(OptionCode::UserClass) {
            Some(DhcpOption::UserClass(v)) => is_ipxe_user_class(v),
            _ => false,
        };
        let is_ipxe = user_class_ipxe || opts.contains(OptionCode::from(OPT_IPXE_ENCAP));
        let client_uuid = match opts.get(OptionCode::ClientMachineIdentifier) {
            Some(DhcpOption::ClientMachineIdentifier(v)) => Some(v.clone()),
            _ => None,
        };
        let pxe_boot_item = match opts.get(OptionCode::VendorExtensions) {
            Some(DhcpOption::VendorExtensions(v)) => find_boot_item(v),
            _ => None,
        };
        let requested_ip = match opts.get(OptionCode::RequestedIpAddress) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => None,
        };
        let server_id = match opts.get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        if !valid_relay(msg.giaddr()) {
            return Err(RequestError::BadRelay(msg.giaddr()));
        }
        Ok(BootRequest {
            mac: MacAddr(mac),
            xid: msg.xid(),
            msg_type,
            arch,
            vendor_class,
            is_ipxe,
            client_uuid,
            pxe_boot_item,
            giaddr: msg.giaddr(),
            ciaddr: msg.ciaddr(),
            requested_ip,
            server_id,
            broadcast: msg.flags().broadcast(),
        })
    }

    /// Proxy mode answers only PXE / HTTP boot clients.
    pub fn require_boot_client(&self) -> Result<(), RequestError> {
        if self.vendor_class.is_boot_client() {
            Ok(())
        } else {
            let what = match &self.vendor_class {
                VendorClass::Absent => "missing".to_string(),
                other => format!("is {other}"),
            };
            Err(RequestError::NotPxeClient(what))
        }
    }

    pub fn is_http_client(&self) -> bool {
        self.vendor_class == VendorClass::HttpClient
    }

    /// PXE firmware (not iPXE, not HTTP boot): the one that needs option 43.
    pub fn is_pxe_firmware(&self) -> bool {
        self.vendor_class == VendorClass::PxeClient && !self.is_ipxe
    }

    /// "iPXE", "firmware" (PXE ROM / UEFI) or "non-PXE".
    pub fn client_kind(&self) -> &'static str {
        if self.is_ipxe {
            "iPXE"
        } else if self.vendor_class.is_boot_client() {
            "firmware"
        } else {
            "non-PXE"
        }
    }

    pub fn arch_name(&self) -> String {
        self.arch.map_or_else(|| "-".to_string(), |a| a.name())
    }
}

/// `PXEClient:Arch:00007:UNDI:003016` → 7.
pub fn arch_from_vendor_class(v: &[u8]) -> Option<ClientArch> {
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.split(':');
    while let Some(p) = parts.next() {
        if p == "Arch" {
            let n = parts.next()?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return n.parse::<u16>().ok().map(ClientArch::from_code);
        }
    }
    None
}

/// iPXE sends option 77 as the bare string "iPXE"; RFC 3004 clients would
/// length-prefix it. Accept both.
fn is_ipxe_user_class(v: &[u8]) -> bool {
    if v == b"iPXE" {
        return true;
    }
    let mut rest = v;
    while let Some((&len, tail)) = rest.split_first() {
        let len = len as usize;
        if len > tail.len() {
            return false;
        }
        if &tail[..len] == b"iPXE" {
            return true;
        }
        rest = &tail[len..];
    }
    false
}

/// PXE vendor options (option 43): find sub-option 71 (boot item, 4 bytes).
fn find_boot_item(v: &[u8]) -> Option<[u8; 4]> {
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            0 => i += 1,
            255 => return None,
            code => {
                let len = *v.get(i + 1)? as usize;
                let val = v.get(i + 2..i + 2 + len)?;
                if code == PXE_BOOT_ITEM && len == 4 {
                    return val.try_into().ok();
                }
                i += 2 + len;
            }
        }
    }
    None
}

/// Short upper-case name for logs: DISCOVER, REQUEST, ...
pub fn msg_type_name(t: MessageType) -> String {
    match t {
        MessageType::Discover => "DISCOVER".into(),
        MessageType::Offer => "OFFER".into(),
        MessageType::Request => "REQUEST".into(),
        MessageType::Decline => "DECLINE".into(),
        MessageType::Ack => "ACK".into(),
        MessageType::Nak => "NAK".into(),
        MessageType::Release => "RELEASE".into(),
        MessageType::Inform => "INFORM".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_from_option_60() {
        assert_eq!(
            arch_from_vendor_class(b"PXEClient:Arch:00007:UNDI:003016"),
            Some(ClientArch::EfiX64)
        );
        assert_eq!(
            arch_from_vendor_class(b"PXEClient:Arch:00000:UNDI:002001"),
            Some(ClientArch::BiosX86)
        );
        assert_eq!(
            arch_from_vendor_class(b"HTTPClient:Arch:00016:UNDI:003001"),
            Some(ClientArch::HttpX64)
        );
        assert_eq!(arch_from_vendor_class(b"PXEClient"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:-1"), None);
        assert_eq!(arch_from_vendor_class(b"PXEClient:Arch:99999999"), None);
        assert_eq!(arch_from_vendor_class(&[0xff, 0xfe]), None);
    }

    #[test]
    fn user_class_forms() {
        assert!(is_ipxe_user_class(b"iPXE"));
        assert!(is_ipxe_user_class(b"\x04iPXE"));
        assert!(is_ipxe_user_class(b"\x03abc\x04iPXE"));
        assert!(!is_ipxe_user_class(b"gPXE"));
        assert!(!is_ipxe_user_class(b"\x09iPXE"));
        assert!(!is_ipxe_user_class(b""));
    }

    #[test]
    fn boot_item() {
        assert_eq!(
            find_boot_item(&[6, 1, 8, 71, 4, 0x80, 0, 0, 0, 255]),
            Some([0x80, 0, 0, 0])
        );
        assert_eq!(find_boot_item(&[71, 4, 1]), None);
        assert_eq!(find_boot_item(&[6, 1, 8, 255]), None);
        assert_eq!(find_boot_item(&[6]), None);
    }
}
