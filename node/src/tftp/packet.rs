//! TFTP wire format (RFC 1350, option extension RFC 2347).
//!
//! Pure functions only: no I/O, no logging. Parsing never panics on any input
//! because every byte here comes straight off the network.

use std::borrow::Cow;
use std::fmt;

/// Bytes in front of the payload of a DATA packet (opcode + block number).
pub const DATA_HEADER_LEN: usize = 4;
/// RFC 1350 block size, used whenever `blksize` is not negotiated.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// RFC 2348 lower bound.
pub const MIN_BLKSIZE: u16 = 8;
/// RFC 2348 upper bound.
pub const MAX_BLKSIZE: u16 = 65464;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Rrq = 1,
    Wrq = 2,
    Data = 3,
    Ack = 4,
    Error = 5,
    Oack = 6,
}

impl Opcode {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Rrq,
            2 => Self::Wrq,
            3 => Self::Data,
            4 => Self::Ack,
            5 => Self::Error,
            6 => Self::Oack,
            _ => return None,
        })
    }
}

/// Transfer mode of a request. Compared case-insensitively as RFC 1350 asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Netascii,
    Octet,
    /// Obsolete in RFC 1350 itself; parsed so the server can refuse it by name.
    Mail,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("octet") {
            Some(Mode::Octet)
        } else if s.eq_ignore_ascii_case("netascii") {
            Some(Mode::Netascii)
        } else if s.eq_ignore_ascii_case("mail") {
            Some(Mode::Mail)
        } else {
            None
        }
    }
}

/// Error codes of RFC 1350 plus 8 from RFC 2347.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTransferId = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionNegotiation = 8,
}

impl ErrorCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0 => Self::NotDefined,
            1 => Self::FileNotFound,
            2 => Self::AccessViolation,
            3 => Self::DiskFull,
            4 => Self::IllegalOperation,
            5 => Self::UnknownTransferId,
            6 => Self::FileExists,
            7 => Self::NoSuchUser,
            8 => Self::OptionNegotiation,
            _ => return None,
        })
    }
}

/// One `name=value` pair of an RRQ/WRQ/OACK. Names are stored lowercased because
/// RFC 2347 makes them case-insensitive and every later comparison becomes trivial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpOption {
    pub name: String,
    pub value: String,
}

impl TftpOption {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A read or write request. Owned because the server hands it to a task that
/// outlives the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    pub options: Vec<TftpOption>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, payload: &'a [u8] },
    Ack(u16),
    Error { code: u16, message: Cow<'a, str> },
    Oack(Vec<TftpOption>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("packet too short ({0} bytes)")]
    TooShort(usize),
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("{0} is not NUL-terminated")]
    Unterminated(&'static str),
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("unknown transfer mode {0:?}")]
    UnknownMode(String),
    #[error("option {0:?} has no value")]
    OptionWithoutValue(String),
    #[error("{0} trailing bytes after the packet")]
    TrailingBytes(usize),
}

impl Packet<'_> {
    /// Parses one datagram.
    pub fn parse(buf: &[u8]) -> Result<Packet<'_>, ParseError> {
        if buf.len() < 2 {
            return Err(ParseError::TooShort(buf.len()));
        }
        let raw_op = u16::from_be_bytes([buf[0], buf[1]]);
        let op = Opcode::from_u16(raw_op).ok_or(ParseError::UnknownOpcode(raw_op))?;
        let body = &buf[2..];
        match op {
            Opcode::Rrq => parse_request(body).map(Packet::Rrq),
            Opcode::Wrq => parse_request(body).map(Packet::Wrq),
            Opcode::Data => {
                let block = read_u16(body).ok_or(ParseError::TooShort(buf.len()))?;
                Ok(Packet::Data {
                    block,
                    payload: &body[2..],
                })
            }
            Opcode::Ack => {
                let block = read_u16(body).ok_or(ParseError::TooShort(buf.len()))?;
                // Some stacks pad short frames; the ACK is still unambiguous, so extra
                // bytes are tolerated rather than turning a valid ACK into a stall.
                Ok(Packet::Ack(block))
            }
            Opcode::Error => {
                let code = read_u16(body).ok_or(ParseError::TooShort(buf.len()))?;
                // Lenient on the message: a peer sending ERROR is giving up, and
                // honouring that beats retransmitting at it because its text lacked a NUL.
                let rest = &body[2..];
                let msg = match rest.iter().position(|&b| b == 0) {
                    Some(end) => &rest[..end],
                    None => rest,
                };
                Ok(Packet::Error {
                    code,
                    message: String::from_utf8_lossy(msg),
                })
            }
            Opcode::Oack => {
                let mut fields = Fields::new(body);
                let options = parse_options(&mut fields)?;
                Ok(Packet::Oack(options))
            }
        }
    }

    /// Serialises the packet into `out` (cleared first). Used for everything but
    /// the DATA hot path, which writes its header in place with [`write_data_header`].
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Packet::Rrq(req) => encode_request(out, Opcode::Rrq, req),
            Packet::Wrq(req) => encode_request(out, Opcode::Wrq, req),
            Packet::Data { block, payload } => {
                out.extend_from_slice(&(Opcode::Data as u16).to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Packet::Ack(block) => out.extend_from_slice(&encode_ack(*block)),
            Packet::Error { code, message } => {
                out.extend_from_slice(&(Opcode::Error as u16).to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                push_cstr(out, message);
            }
            Packet::Oack(options) => {
                out.extend_from_slice(&(Opcode::Oack as u16).to_be_bytes());
                for o in options {
                    push_cstr(out, &o.name);
                    push_cstr(out, &o.value);
                }
            }
        }
    }
}

/// Writes the 4-byte DATA header into the front of `buf`. The send loop keeps one
/// packet buffer per transfer and only rewrites header + payload, so no allocation.
///
/// `buf` must be at least [`DATA_HEADER_LEN`] long; callers size it once per transfer.
#[inline]
pub fn write_data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&(Opcode::Data as u16).to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

#[inline]
pub fn encode_ack(block: u16) -> [u8; 4] {
    let op = (Opcode::Ack as u16).to_be_bytes();
    let b = block.to_be_bytes();
    [op[0], op[1], b[0], b[1]]
}

/// Encodes an ERROR packet into `out`.
pub fn encode_error(out: &mut Vec<u8>, code: ErrorCode, message: &str) {
    Packet::Error {
        code: code.as_u16(),
        message: Cow::Borrowed(message),
    }
    .encode(out);
}

fn encode_request(out: &mut Vec<u8>, op: Opcode, req: &Request) {
    out.extend_from_slice(&(op as u16).to_be_bytes());
    push_cstr(out, &req.filename);
    push_cstr(out, req.mode.as_str());
    for o in &req.options {
        push_cstr(out, &o.name);
        push_cstr(out, &o.value);
    }
}

/// Appends `s` NUL-terminated. An embedded NUL would end the string early on
/// the receiving side and shift every following field, so it is dropped.
fn push_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().filter(|&b| b != 0));
    out.push(0);
}

fn read_u16(b: &[u8]) -> Option<u16> {
    match b {
        [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// Cursor over NUL-terminated fields.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Some clients pad requests with extra NULs; only zeros left means "done".
    fn only_padding_left(&self) -> bool {
        self.rest.iter().all(|&b| b == 0)
    }

    fn next_str(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ParseError::Unterminated(what))?;
        let field = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        std::str::from_utf8(field).map_err(|_| ParseError::InvalidUtf8(what))
    }
}

fn parse_request(body: &[u8]) -> Result<Request, ParseError> {
    let mut fields = Fields::new(body);
    let filename = fields.next_str("filename")?.to_owned();
    let mode_str = fields.next_str("mode")?;
    let mode = Mode::parse(mode_str).ok_or_else(|| ParseError::UnknownMode(mode_str.to_owned()))?;
    let options = parse_options(&mut fields)?;
    Ok(Request {
        filename,
        mode,
        options,
    })
}

fn parse_options(fields: &mut Fields<'_>) -> Result<Vec<TftpOption>, ParseError> {
    let mut options = Vec::new();
    while !fields.is_empty() {
        if fields.only_padding_left() {
            break;
        }
        let name = fields.next_str("option name")?;
        if name.is_empty() {
            // A lone NUL followed by more non-zero bytes: not padding, not an option.
            return Err(ParseError::TrailingBytes(fields.rest.len() + 1));
        }
        let value = fields
            .next_str("option value")
            .map_err(|_| ParseError::OptionWithoutValue(name.to_owned()))?;
        options.push(TftpOption::new(name.to_ascii_lowercase(), value));
    }
    Ok(options)
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq_bytes(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0, 1];
        for p in parts {
            v.extend_from_slice(p);
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_plain_rrq() {
        let b = rrq_bytes(&[b"pxelinux.0", b"octet"]);
        let p = Packet::parse(&b).unwrap();
        assert_eq!(
            p,
            Packet::Rrq(Request {
                filename: "pxelinux.0".into(),
                mode: Mode::Octet,
                options: vec![]
            })
        );
    }

    #[test]
    fn parses_rrq_with_options_case_insensitively() {
        let b = rrq_bytes(&[
            b"f",
            b"OcTeT",
            b"BLKSIZE",
            b"1468",
            b"TSize",
            b"0",
            b"windowSize",
            b"16",
        ]);
        let Packet::Rrq(req) = Packet::parse(&b).unwrap() else {
            panic!("not rrq")
        };
        assert_eq!(req.mode, Mode::Octet);
        assert_eq!(
            req.options,
            vec![
                TftpOption::new("blksize", "1468"),
                TftpOption::new("tsize", "0"),
                TftpOption::new("windowsize", "16"),
            ]
        );
    }

    #[test]
    fn parses_wrq_and_netascii_and_mail() {
        let b = rrq_bytes(&[b"f", b"NETASCII"]);
        let mut w = b.clone();
        w[1] = 2;
        assert!(matches!(Packet::parse(&w).unwrap(), Packet::Wrq(r) if r.mode == Mode::Netascii));
        let m = rrq_bytes(&[b"f", b"mail"]);
        assert!(matches!(Packet::parse(&m).unwrap(), Packet::Rrq(r) if r.mode == Mode::Mail));
    }

    #[test]
    fn tolerates_trailing_nul_padding() {
        let mut b = rrq_bytes(&[b"f", b"octet", b"blksize", b"1024"]);
        b.extend_from_slice(&[0, 0, 0]);
        let Packet::Rrq(req) = Packet::parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(req.options.len(), 1);
    }

    #[test]
    fn rejects_malformed_requests() {
        // Empty and one-byte datagrams.
        assert_eq!(Packet::parse(&[]), Err(ParseError::TooShort(0)));
        assert_eq!(Packet::parse(&[0]), Err(ParseError::TooShort(1)));
        // Unknown opcodes.
        assert_eq!(
            Packet::parse(&[0, 7, 1, 2]),
            Err(ParseError::UnknownOpcode(7))
        );
        assert_eq!(Packet::parse(&[0, 0]), Err(ParseError::UnknownOpcode(0)));
        assert_eq!(
            Packet::parse(&[0xff, 0xff]),
            Err(ParseError::UnknownOpcode(0xffff))
        );
        // Truncated: no filename terminator, no mode, mode unterminated.
        assert_eq!(
            Packet::parse(&[0, 1]),
            Err(ParseError::Unterminated("filename"))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01file"),
            Err(ParseError::Unterminated("filename"))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01file\x00"),
            Err(ParseError::Unterminated("mode"))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01file\x00oct"),
            Err(ParseError::Unterminated("mode"))
        );
        // Bad mode.
        assert_eq!(
            Packet::parse(b"\x00\x01file\x00binary\x00"),
            Err(ParseError::UnknownMode("binary".into()))
        );
        // Option without value / unterminated value.
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00octet\x00blksize\x00"),
            Err(ParseError::OptionWithoutValue("blksize".into()))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00octet\x00blksize\x001468"),
            Err(ParseError::OptionWithoutValue("blksize".into()))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00octet\x00blksi"),
            Err(ParseError::Unterminated("option name"))
        );
        // Garbage after a NUL that is not padding.
        assert!(matches!(
            Packet::parse(b"\x00\x01f\x00octet\x00\x00junk"),
            Err(ParseError::TrailingBytes(_))
        ));
        // Invalid UTF-8 filename.
        assert_eq!(
            Packet::parse(b"\x00\x01\xff\xfe\x00octet\x00"),
            Err(ParseError::InvalidUtf8("filename"))
        );
    }

    #[test]
    fn short_data_ack_error_are_rejected() {
        assert_eq!(Packet::parse(&[0, 3, 0]), Err(ParseError::TooShort(3)));
        assert_eq!(Packet::parse(&[0, 4]), Err(ParseError::TooShort(2)));
        assert_eq!(Packet::parse(&[0, 4, 1]), Err(ParseError::TooShort(3)));
        assert_eq!(Packet::parse(&[0, 5, 0]), Err(ParseError::TooShort(3)));
    }

    #[test]
    fn parses_ack_data_error() {
        assert_eq!(
            Packet::parse(&[0, 4, 0xff, 0xfe]).unwrap(),
            Packet::Ack(0xfffe)
        );
        // Padded ACK still counts.
        assert_eq!(Packet::parse(&[0, 4, 0, 1, 0, 0]).unwrap(), Packet::Ack(1));
        assert_eq!(
            Packet::parse(&[0, 3, 0, 9, 1, 2, 3]).unwrap(),
            Packet::Data {
                block: 9,
                payload: &[1, 2, 3]
            }
        );
        assert_eq!(
            Packet::parse(&[0, 3, 0, 9]).unwrap(),
            Packet::Data {
                block: 9,
                payload: &[]
            }
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x08User aborted\x00").unwrap(),
            Packet::Error {
                code: 8,
                message: "User aborted".into()
            }
        );
        // Missing terminator / no message at all are tolerated.
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x01nope").unwrap(),
            Packet::Error {
                code: 1,
                message: "nope".into()
            }
        );
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x00").unwrap(),
            Packet::Error {
                code: 0,
                message: "".into()
            }
        );
    }

    #[test]
    fn round_trips_every_packet_kind() {
        let packets = vec![
            Packet::Rrq(Request {
                filename: "a/b.efi".into(),
                mode: Mode::Octet,
                options: vec![
                    TftpOption::new("blksize", "1468"),
                    TftpOption::new("tsize", "0"),
                ],
            }),
            Packet::Wrq(Request {
                filename: "x".into(),
                mode: Mode::Netascii,
                options: vec![],
            }),
            Packet::Data {
                block: 65535,
                payload: b"hello",
            },
            Packet::Data {
                block: 0,
                payload: b"",
            },
            Packet::Ack(0),
            Packet::Ack(65535),
            Packet::Error {
                code: 2,
                message: "read-only server".into(),
            },
            Packet::Oack(vec![
                TftpOption::new("tsize", "123"),
                TftpOption::new("windowsize", "16"),
            ]),
        ];
        let mut buf = Vec::new();
        for p in packets {
            p.encode(&mut buf);
            assert_eq!(Packet::parse(&buf).unwrap(), p);
        }
    }

    #[test]
    fn encode_error_strips_embedded_nul() {
        let mut buf = Vec::new();
        encode_error(&mut buf, ErrorCode::AccessViolation, "bad\0name");
        assert_eq!(buf, b"\x00\x05\x00\x02badname\x00");
    }

    #[test]
    fn data_header_and_ack() {
        let mut buf = [0xaau8; 6];
        write_data_header(&mut buf, 0x1234);
        assert_eq!(buf, [0, 3, 0x12, 0x34, 0xaa, 0xaa]);
        assert_eq!(encode_ack(0x0102), [0, 4, 1, 2]);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // Cheap deterministic fuzz: every prefix and a spread of byte patterns.
        let seed = b"\x00\x01file\x00octet\x00blksize\x001468\x00tsize\x000\x00";
        for len in 0..=seed.len() {
            let _ = Packet::parse(&seed[..len]);
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let mut b = [0u8; 24];
            for byte in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = (x % 7) as u8; // small alphabet: lots of NULs and valid opcodes
            }
            let len = (x as usize) % b.len();
            let _ = Packet::parse(&b[..len]);
        }
    }
}
