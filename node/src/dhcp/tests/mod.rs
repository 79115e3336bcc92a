//! Tests of the DHCP part: real client packets (as iPXE, EDK2, UEFI HTTP boot,
//! arm64 UEFI and dhclient send them) through the pure handler.

mod clients;
mod lease_file;
mod malformed;
mod proxy;
mod server_mode;
mod socket;
