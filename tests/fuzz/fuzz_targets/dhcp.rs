//! DHCP: a datagram through validate → decide → build, in proxy and in server mode, on
//! port 67 and 4011, then the reply through the encoder and back through the decoder.
//! The same datagram is handled twice so the second pass meets the lease or offer the first
//! one left (REQUEST after DISCOVER state, renewals, declines).
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use dhcproto::{Decodable, Encodable};
use libfuzzer_sys::fuzz_target;
use netboot_node::dhcp::{
    process, BootFiles, DhcpConfig, DhcpMode, Inbound, LocalPort, PoolConfig, State,
};

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

fn configs() -> &'static [DhcpConfig; 2] {
    static CONFIGS: OnceLock<[DhcpConfig; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let boot_files = BootFiles {
            ipxe_script_url: "http://{server_ip}:8080/boot.ipxe".into(),
            http_base_url: "http://{server_ip}:8080".into(),
            ..BootFiles::default()
        };
        let pool = PoolConfig {
            range_start: Ipv4Addr::new(10, 1, 0, 100),
            range_end: Ipv4Addr::new(10, 1, 0, 103),
            subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
            router: Some(Ipv4Addr::new(10, 1, 0, 1)),
            dns_servers: vec![Ipv4Addr::new(10, 1, 0, 1)],
            domain_name: Some("lab.test".into()),
            lease_time_secs: 3600,
            lease_file: None,
            decline_hold_secs: 600,
        };
        let cfg = |mode| {
            DhcpConfig {
                mode,
                server_ip: SERVER_IP,
                boot_files: boot_files.clone(),
                ..DhcpConfig::default()
            }
            .finalize()
            .expect("fuzz DHCP config")
        };
        [cfg(DhcpMode::Proxy), cfg(DhcpMode::Server(pool))]
    })
}

fuzz_target!(|data: &[u8]| {
    let src: SocketAddr = "10.1.0.50:68".parse().expect("literal address");
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for cfg in configs() {
        for port in [LocalPort::Dhcp, LocalPort::Pxe] {
            let mut state = State::default();
            for pass in 0..2u64 {
                let pkt = Inbound {
                    data,
                    src,
                    port,
                    now: now + Duration::from_secs(pass * 30),
                };
                let out = process(cfg, &mut state, &pkt);
                assert!(!out.log.is_empty(), "every datagram gets a log line");
                let Some((reply, _dest)) = out.reply else {
                    continue;
                };
                // Whatever we answer must encode, and decode back to the same message.
                let bytes = reply.to_vec().expect("a reply we built must encode");
                let back = dhcproto::v4::Message::from_bytes(&bytes)
                    .expect("a reply we encoded must decode");
                assert_eq!(back.xid(), reply.xid());
                assert_eq!(back.opts().msg_type(), reply.opts().msg_type());
            }
        }
    }
});
