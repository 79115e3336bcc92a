//! DHCP for netboot: proxyDHCP (next to a site's DHCP server) or a full DHCP
//! server for isolated labs, both handing PXE, iPXE and UEFI HTTP boot clients
//! their boot program.
//!
//! A packet goes through three small pure steps, like pixiecore:
//! [`request`] validates it, [`decide`] decides (using the [`arch`] table), and
//! [`reply`] builds the answer. [`handler::handle`] chains them without any
//! socket; [`server::DhcpServer`] owns the sockets and the lease file.

pub mod arch;
pub mod config;
pub mod decide;
pub mod free;
pub mod handler;
pub mod lease;
pub mod mac;
pub mod pool;
pub mod port_owner;
pub mod reply;
pub mod request;
pub mod server;
pub mod state;
pub mod wire;

pub use arch::{select_boot, BootAnswer, BootFiles, ClientArch};
pub use config::{ConfigError, DhcpConfig, DhcpMode, PoolConfig};
pub use decide::{Decision, LocalPort};
pub use handler::{handle, process, Inbound, Outcome};
pub use lease::{Lease, LeaseError, LeaseStore};
pub use mac::MacAddr;
pub use request::{BootRequest, RequestError, VendorClass};
pub use server::{DhcpServer, ServerError};
pub use state::State;

#[cfg(test)]
mod tests;
