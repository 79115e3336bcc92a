//! Read-only TFTP server for PXE boot.
//!
//! Implements RFC 1350 (read requests only; write requests are refused), the
//! option extension RFC 2347, `blksize` (RFC 2348), `timeout`/`tsize`
//! (RFC 2349) and `windowsize` (RFC 7440).
//!
//! The server never touches the filesystem itself: it normalises and validates
//! the requested name (see [`path::normalize`]) and asks a [`TftpSource`] for
//! the file. [`DirSource`] serves a directory.
//!
//! ```text
//! use std::sync::Arc;
//! use netboot_node::tftp::{serve, DirSource, TftpConfig};
//!
//! let socket = tokio::net::UdpSocket::bind("192.0.2.1:69").await?;
//! let source = Arc::new(DirSource::new("/srv/tftp")?);
//! serve(socket, source, TftpConfig::default()).await
//! ```
//!
//! Every request produces one log line when it ends (target `…::tftp::server`):
//! `tftp transfer` with client, file, outcome, bytes, blksize, windowsize,
//! duration and rate; or `tftp request refused` with the reason. UEFI `tsize`
//! probes (client aborts with ERROR 8 after the OACK) are logged at debug level,
//! server-side failures at warn, everything else at info.

mod admission;
mod config;
pub mod options;
pub mod packet;
pub mod path;
mod server;
mod source;
mod store_source;
mod transfer;

pub use config::TftpConfig;
pub use packet::ErrorCode;
pub use server::{serve, serve_until, serve_until_stopped};
pub use source::{DirFile, DirSource, OpenError, TftpFile, TftpSource};
pub use store_source::StoreSource;
