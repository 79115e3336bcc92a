//! The netboot node as a library: configuration, the verified store, and the protocol
//! servers that read from it. The `netboot` binary is a thin shell around this crate.

pub mod boot;
pub mod clients;
pub mod config;
pub mod dhcp;
pub mod fleet;
pub mod fsutil;
pub mod http;
pub mod integrity;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod publish;
pub mod quick;
pub mod route;
pub mod runtime;
pub mod status;
pub mod store;
pub mod tftp;
pub mod throttled;
