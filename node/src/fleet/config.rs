//! `[fleet]`: how this node finds its peers and what it fetches from them.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use iroh::EndpointId;
use netboot_proto::ImageName;
use serde::Deserialize;

use super::transport::{Congestion, Window};

/// The default UDP port of the fleet protocol (QUIC).
pub const DEFAULT_FLEET_PORT: u16 = 7311;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// UDP address the fleet endpoint binds (QUIC). Peers reach this node on it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Nodes this one connects to, as `<endpoint-id>@<host:port>` (`netboot node-id` prints a
    /// node's own). They may also connect here and fetch.
    #[serde(default)]
    pub peers: Vec<PeerAddr>,
    /// Endpoint ids that may connect here and fetch, without this node dialling them (e.g.
    /// branch sites behind NAT that know this regional node, but not the other way round).
    #[serde(default)]
    pub members: Vec<MemberId>,
    /// Which image names this site fetches: `*` (default) or names, with `*` as a prefix or
    /// suffix wildcard (`debian-*`). Announcements of other names are still passed on.
    #[serde(default = "default_fetch")]
    pub fetch: Vec<NamePattern>,
    /// Upper bound of what this node sends to peers, e.g. `"20 Mbit/s"` or `"5 MB/s"`, so a
    /// sync does not fill a branch office's uplink. Default: unlimited.
    pub upload_limit: Option<Rate>,
    /// How many peers this node sends data to at once; more are told to come back later and
    /// turn to other peers. A slot stays with a peer while it keeps asking. With 1 (the
    /// default) a release spreads as a chain in which every site's uplink carries it once; a
    /// higher value serves more peers at once, each at a share of the uplink. The publisher's
    /// own session is not counted.
    #[serde(default = "default_upload_slots")]
    pub upload_slots: usize,
    /// A relay server URL for sites that cannot reach each other directly. Off by default:
    /// the fleet runs over the organisation's own network, and no public service is used.
    pub relay: Option<String>,
    /// Seconds without progress from a peer before a fetch falls over to the next peer.
    #[serde(default = "default_stall_secs")]
    pub stall_timeout_secs: u64,
    /// QUIC congestion controller: `"bbr"` (default; holds its rate under random loss),
    /// `"cubic"` or `"newreno"`. See `fleet::transport`.
    #[serde(default)]
    pub congestion: Congestion,
    /// Flow-control window of each fleet stream, e.g. `"2 MiB"`: with `streams` pieces of a
    /// file in flight at once, at least the fastest link's rate × 2 round trips ÷ `streams`,
    /// and at most ~2.7 MiB (above it a lossy link makes the receiver's
    /// QUIC stack close connections, see `fleet::transport::REASSEMBLY_SAFE_BYTES`). Default
    /// 2 MiB.
    #[serde(default)]
    pub window: Window,
    /// Pieces of a file asked at once of a peer that holds it complete, each its own stream
    /// (1–4): 1 (the default) asks for a file in one request; 4 keeps four 4 MiB pieces in
    /// flight, which a long lossy link needs to stay full (one stream's window is too small
    /// there). Best on a leaf site: pieces leave holes that hide a site's progress from the
    /// sites following it, and made the origin send more in the 8-site benchmark. See
    /// `fleet::pieces`.
    #[serde(default = "default_streams")]
    pub streams: usize,
}

impl Default for FleetSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            peers: Vec::new(),
            members: Vec::new(),
            fetch: default_fetch(),
            upload_limit: None,
            upload_slots: default_upload_slots(),
            relay: None,
            stall_timeout_secs: default_stall_secs(),
            congestion: Congestion::default(),
            window: Window::default(),
            streams: default_streams(),
        }
    }
}

impl FleetSection {
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs(self.stall_timeout_secs.max(1))
    }

    /// Whether this site fetches releases of `name`.
    pub fn wants(&self, name: &ImageName) -> bool {
        wants(&self.fetch, name)
    }
}

/// Whether a `[fleet] fetch` list covers `name`.
pub fn wants(fetch: &[NamePattern], name: &ImageName) -> bool {
    fetch.iter().any(|p| p.matches(name.as_str()))
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], DEFAULT_FLEET_PORT))
}
fn default_fetch() -> Vec<NamePattern> {
    vec![NamePattern("*".into())]
}
fn default_upload_slots() -> usize {
    1
}
fn default_streams() -> usize {
    1
}
fn default_stall_secs() -> u64 {
    5
}

/// A peer: its endpoint id (its identity, checked by QUIC's handshake) and where to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub id: EndpointId,
    /// `host:port`, resolved when the node starts (and again on each reconnect).
    pub host: String,
}

impl PeerAddr {
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        Ok(self.host.to_socket_addrs()?.collect())
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.host)
    }
}

impl FromStr for PeerAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, host) = s
            .split_once('@')
            .ok_or_else(|| format!("`{s}`: expected <endpoint-id>@<host:port>"))?;
        let id = EndpointId::from_str(id).map_err(|e| {
            format!("`{s}`: bad endpoint id `{id}` ({e}); `netboot node-id` prints a node's id")
        })?;
        let port_ok = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!("`{s}`: expected <host:port> after `@`"));
        }
        Ok(Self {
            id,
            host: host.to_string(),
        })
    }
}

impl<'de> Deserialize<'de> for PeerAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An endpoint id allowed to connect (`members`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberId(pub EndpointId);

impl<'de> Deserialize<'de> for MemberId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EndpointId::from_str(&s)
            .map(MemberId)
            .map_err(|e| serde::de::Error::custom(format!("bad endpoint id `{s}`: {e}")))
    }
}

/// An image-name pattern: exact, `prefix*`, `*suffix` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct NamePattern(pub String);

impl NamePattern {
    pub fn matches(&self, name: &str) -> bool {
        let p = self.0.as_str();
        if p == "*" {
            true
        } else if let Some(prefix) = p.strip_suffix('*') {
            name.starts_with(prefix)
        } else if let Some(suffix) = p.strip_prefix('*') {
            name.ends_with(suffix)
        } else {
            name == p
        }
    }
}

/// `"20 Mbit/s"` → `(20.0, "Mbit/s")`: a leading decimal number and the trimmed rest.
pub(super) fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// A data rate in bytes per second, written as `"20 Mbit/s"`, `"5 MB/s"`, `"800 kbit/s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub bytes_per_sec: u64,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (num, unit) = number_and_unit(s)
            .ok_or_else(|| format!("`{s}`: expected a number and a unit, e.g. \"20 Mbit/s\""))?;
        let unit = unit.trim_end_matches("/s").trim_end_matches("ps");
        let bits: f64 = match unit {
            "bit" | "b" => 1.0,
            "kbit" | "Kbit" | "kb" => 1e3,
            "Mbit" | "mbit" | "Mb" => 1e6,
            "Gbit" | "gbit" | "Gb" => 1e9,
            "B" => 8.0,
            "kB" | "KB" => 8e3,
            "MB" => 8e6,
            "GB" => 8e9,
            "KiB" => 8.0 * 1024.0,
            "MiB" => 8.0 * 1048576.0,
            "GiB" => 8.0 * 1073741824.0,
            _ => {
                return Err(format!(
                    "`{s}`: unknown unit `{unit}` (use kbit/s, Mbit/s, Gbit/s, kB/s, MB/s, MiB/s)"
                ))
            }
        };
        let bytes_per_sec = (num * bits / 8.0) as u64;
        if bytes_per_sec < 1024 {
            return Err(format!("`{s}`: below 1 KiB/s, a sync would never finish"));
        }
        Ok(Self { bytes_per_sec })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} Mbit/s", self.bytes_per_sec as f64 * 8.0 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6";

    #[test]
    fn peer_addresses() {
        let p: PeerAddr = format!("{ID}@10.0.0.1:7311").parse().unwrap();
        assert_eq!(p.host, "10.0.0.1:7311");
        assert_eq!(p.to_string(), format!("{ID}@10.0.0.1:7311"));
        let p: PeerAddr = format!("{ID}@regional.example:7311").parse().unwrap();
        assert_eq!(p.host, "regional.example:7311");
        for bad in [
            ID.to_string(),
            format!("{ID}@10.0.0.1"),
            "zz@10.0.0.1:1".to_string(),
            format!("{ID}@:7311"),
        ] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        let r: Rate = "20 Mbit/s".parse().unwrap();
        assert_eq!(r.bytes_per_sec, 2_500_000);
        let r: Rate = "5MB/s".parse().unwrap();
        assert_eq!(r.bytes_per_sec, 5_000_000);
        let r: Rate = "1.5 MiB/s".parse().unwrap();
        assert_eq!(r.bytes_per_sec, 1_572_864);
        assert!("fast".parse::<Rate>().is_err());
        assert!("20 furlongs/s".parse::<Rate>().is_err());
        assert!("1 bit/s".parse::<Rate>().is_err());
    }

    #[test]
    fn transport_settings() {
        let parse = |t: &str| toml::from_str::<FleetSection>(t).map_err(|e| e.to_string());
        let d = parse("").unwrap();
        assert_eq!(
            (d.congestion, d.window, d.streams),
            (Congestion::Bbr, Window::from_mib(2), 1)
        );
        assert_eq!(parse("streams = 4").unwrap().streams, 4);
        let s = parse("congestion = \"cubic\"\nwindow = \"4 MiB\"").unwrap();
        assert_eq!(
            (s.congestion, s.window),
            (Congestion::Cubic, Window::from_mib(4))
        );
        let s = parse("congestion = \"newreno\"\nwindow = 8388608").unwrap();
        assert_eq!(
            (s.congestion, s.window),
            (Congestion::NewReno, Window::from_mib(8))
        );
        let e = parse("congestion = \"reno\"").unwrap_err();
        assert!(e.contains("congestion") && e.contains("bbr"), "{e}");
        let e = parse("window = \"1 KiB\"").unwrap_err();
        assert!(e.contains("window") && e.contains("64 KiB"), "{e}");
    }

    #[test]
    fn patterns() {
        let name = |p: &str, n: &str| NamePattern(p.into()).matches(n);
        assert!(name("*", "debian"));
        assert!(name("debian-*", "debian-12"));
        assert!(!name("debian-*", "ubuntu"));
        assert!(name("*-rescue", "site-rescue"));
        assert!(name("ipxe", "ipxe"));
        assert!(!name("ipxe", "ipxe2"));
    }
}
