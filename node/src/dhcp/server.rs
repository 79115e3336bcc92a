//! The listener: sockets on 67 (and 4011), a receive loop that never dies on a
//! bad packet, the pure handler in between, leases saved before replying.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::config::{ConfigError, DhcpConfig, DhcpMode};
use super::decide::LocalPort;
use super::handler::{handle, Inbound};
use super::lease::{write_atomic, LeaseError, LeaseStore};
use super::reply;
use super::state::State;
use crate::clients::ClientLog;

/// Receive buffer: DHCP messages are at most 576 bytes unless the client
/// allows more; anything beyond a jumbo frame is junk anyway.
const RECV_BUF: usize = 9000;

/// Why the DHCP service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("another process already serves DHCP on {addr}{} ({}): two DHCP services on one segment give clients conflicting answers; stop it, or set [dhcp] mode = \"off\" on this node", interface.as_ref().map(|i| format!(", interface {i}")).unwrap_or_default(), if holders.is_empty() { "process unknown".to_string() } else { holders.join(", ") })]
    InUse {
        addr: SocketAddr,
        interface: Option<String>,
        holders: Vec<String>,
    },
    #[error("cannot open DHCP socket on {addr}{}: {source}", interface.as_ref().map(|i| format!(" (interface {i})")).unwrap_or_default())]
    Bind {
        addr: SocketAddr,
        interface: Option<String>,
        source: io::Error,
    },
}

/// A bound DHCP service, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct DhcpServer {
    cfg: DhcpConfig,
    clients: ClientLog,
    state: State,
    dhcp: Option<UdpSocket>,
    pxe: Option<UdpSocket>,
}

impl DhcpServer {
    /// Check the configuration, load the lease file (server mode) and bind the
    /// sockets. Must be called inside a tokio runtime.
    pub async fn bind(cfg: DhcpConfig) -> Result<Self, ServerError> {
        let cfg = cfg.finalize()?;
        let leases = match &cfg.mode {
            DhcpMode::Server(pool) => match &pool.lease_file {
                Some(path) => LeaseStore::open(path)?,
                None => LeaseStore::in_memory(),
            },
            _ => LeaseStore::in_memory(),
        };
        let (dhcp, pxe) = if cfg.mode == DhcpMode::Off {
            (None, None)
        } else {
            (
                Some(open_socket(&cfg, cfg.dhcp_port)?),
                Some(open_socket(&cfg, cfg.pxe_port)?),
            )
        };
        Ok(Self {
            cfg,
            clients: ClientLog::default(),
            state: State::new(leases),
            dhcp,
            pxe,
        })
    }

    /// Addresses of the DHCP (67) and PXE (4011) sockets, if bound.
    pub fn local_addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let addr = |s: &Option<UdpSocket>| s.as_ref().and_then(|s| s.local_addr().ok());
        (addr(&self.dhcp), addr(&self.pxe))
    }

    /// Report each client's requests to `clients` (else to a record nobody reads).
    pub fn report_to(mut self, clients: ClientLog) -> Self {
        self.clients = clients;
        self
    }

    pub fn config(&self) -> &DhcpConfig {
        &self.cfg
    }

    /// Serve forever (returns at once when the mode is `Off`).
    pub async fn run(self) {
        self.run_until(std::future::pending()).await
    }

    /// Serve until `shutdown` completes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let Self {
            cfg,
            clients,
            mut state,
            dhcp,
            pxe,
        } = self;
        let Some(dhcp) = dhcp else {
            tracing::info!("dhcp: off");
            return;
        };
        log_start(&cfg, &state, &dhcp, pxe.as_ref());
        tokio::pin!(shutdown);
        let mut buf_dhcp = vec![0u8; RECV_BUF];
        let mut buf_pxe = vec![0u8; RECV_BUF];
        loop {
            let (res, port) = tokio::select! {
                r = dhcp.recv_from(&mut buf_dhcp) => (r, LocalPort::Dhcp),
                r = recv_opt(pxe.as_ref(), &mut buf_pxe) => (r, LocalPort::Pxe),
                _ = &mut shutdown => return,
            };
            let (n, src) = match res {
                Ok(x) => x,
                Err(e) => {
                    // e.g. ICMP errors surfacing on the socket: never fatal.
                    tracing::debug!("dhcp: receive error: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let (data, socket) = match port {
                LocalPort::Dhcp => (&buf_dhcp[..n], &dhcp),
                LocalPort::Pxe => (&buf_pxe[..n], pxe.as_ref().unwrap_or(&dhcp)),
            };
            let inbound = Inbound {
                data,
                src,
                port,
                now: SystemTime::now(),
            };
            let out = handle(&cfg, &mut state, &inbound);
            if let Some(seen) = out.seen {
                clients.dhcp(seen, inbound.now);
            }
            persist(&mut state).await;
            if let Some((msg, to)) = out.reply {
                match reply::encode(&msg) {
                    Ok(bytes) => {
                        if let Err(e) = socket.send_to(&bytes, to).await {
                            tracing::warn!("dhcp: cannot send reply to {to}: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("dhcp: cannot encode reply for {to}: {e}"),
                }
            }
        }
    }
}

async fn recv_opt(s: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Save changed leases before the reply goes out, off the async threads.
/// A failed save is logged and retried on the next change; the reply is still
/// sent (a lab that cannot write its lease file keeps booting).
async fn persist(state: &mut State) {
    let Some((path, bytes)) = state.take_lease_snapshot() else {
        return;
    };
    let p = path.clone();
    let res = tokio::task::spawn_blocking(move || write_atomic(&p, &bytes)).await;
    let err = match res {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    state.mark_leases_dirty();
    tracing::error!("dhcp: cannot write lease file {}: {err}", path.display());
}

fn open_socket(cfg: &DhcpConfig, port: u16) -> Result<UdpSocket, ServerError> {
    let addr = SocketAddr::V4(SocketAddrV4::new(cfg.listen_ip, port));
    let err = |source| ServerError::Bind {
        addr,
        interface: cfg.interface.clone(),
        source,
    };
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    // No SO_REUSEADDR/SO_REUSEPORT: with them a second DHCP service (another node, a
    // dnsmasq) could bind the same port and both would answer every client. Without them
    // the kernel refuses the second bind on the same interface (sockets bound to different
    // interfaces with SO_BINDTODEVICE do not conflict).
    s.set_broadcast(true).map_err(err)?;
    if let Some(ifname) = &cfg.interface {
        s.bind_device(Some(ifname.as_bytes())).map_err(err)?;
    }
    s.set_nonblocking(true).map_err(err)?;
    if let Err(e) = s.bind(&addr.into()) {
        if e.kind() == io::ErrorKind::AddrInUse {
            return Err(ServerError::InUse {
                addr,
                interface: cfg.interface.clone(),
                holders: super::port_owner::udp_port_holders(port),
            });
        }
        return Err(err(e));
    }
    UdpSocket::from_std(s.into()).map_err(err)
}

fn log_start(cfg: &DhcpConfig, state: &State, dhcp: &UdpSocket, pxe: Option<&UdpSocket>) {
    let addr = |s: &UdpSocket| s.local_addr().map_or("?".into(), |a| a.to_string());
    let mode = match &cfg.mode {
        DhcpMode::Proxy => "proxy (boot information only, no addresses)".to_string(),
        DhcpMode::Server(p) => format!(
            "server, pool {}-{}, {} leases loaded",
            p.range_start,
            p.range_end,
            state.leases().len()
        ),
        DhcpMode::Off => "off".to_string(),
    };
    tracing::info!(
        "dhcp: {mode}; server {} listening on {} and {}{}",
        cfg.server_ip,
        addr(dhcp),
        pxe.map_or("-".into(), addr),
        cfg.interface
            .as_ref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default()
    );
    if cfg.interface.is_none() {
        tracing::warn!(
            "dhcp: no interface configured: broadcast replies leave by the default route's interface"
        );
    }
}
