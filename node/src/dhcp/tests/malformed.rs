//! Junk in, nothing out, no panics.

use dhcproto::v4::{Message, MessageType::*};

use super::clients::*;
use crate::dhcp::decide::LocalPort;
use crate::dhcp::handler::{process, Inbound};
use crate::dhcp::{reply, BootRequest, DhcpConfig, RequestError, State};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn clients() -> Vec<Message> {
    vec![
        ipxe(Discover, MAC1, 0),
        ipxe(Request, MAC1, 7),
        edk2(Discover, MAC2),
        with_ciaddr(edk2(Request, MAC2), std::net::Ipv4Addr::new(10, 1, 0, 150)),
        http_boot(Discover, MAC3),
        arm64(Discover, MAC3),
        dhclient(Discover, MAC1),
        dhclient(Request, MAC2),
    ]
}

/// Run raw bytes through the full handler on both ports; return any replies.
fn feed(cfg: &DhcpConfig, st: &mut State, data: &[u8]) -> Vec<Message> {
    let mut replies = Vec::new();
    for (port, src) in [
        (LocalPort::Dhcp, "0.0.0.0:68"),
        (LocalPort::Pxe, "10.1.0.150:68"),
    ] {
        let out = process(
            cfg,
            st,
            &Inbound {
                data,
                src: sa(src),
                port,
                now: at(T0),
            },
        );
        if let Some((m, _)) = out.reply {
            replies.push(m);
        }
    }
    replies
}

#[test]
fn random_bytes_get_no_reply() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let cfgs = [proxy_cfg(), server_cfg()];
    let mut st = State::default();
    for _ in 0..3000 {
        let len = rng.below(1500);
        let data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        for cfg in &cfgs {
            assert!(feed(cfg, &mut st, &data).is_empty());
        }
    }
    // Random bytes behind a valid header and cookie: still nothing.
    let head = bytes(&edk2(Discover, MAC2))[..240].to_vec();
    for _ in 0..3000 {
        let mut data = head.clone();
        let len = rng.below(400);
        data.extend((0..len).map(|_| rng.byte()));
        for cfg in &cfgs {
            for m in feed(cfg, &mut st, &data) {
                reply::encode(&m).unwrap();
            }
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    for cfg in [proxy_cfg(), server_cfg()] {
        for m in clients() {
            let full = bytes(&m);
            let mut st = State::default();
            for n in 0..full.len() {
                let cut = &full[..n];
                assert!(BootRequest::parse(cut).is_err(), "cut at {n} accepted");
                assert!(
                    feed(&cfg, &mut st, cut).is_empty(),
                    "reply to a packet cut at {n}"
                );
            }
            assert!(BootRequest::parse(&full).is_ok());
        }
    }
    let e = BootRequest::parse(&bytes(&edk2(Discover, MAC2))[..100]).unwrap_err();
    assert!(matches!(e, RequestError::Truncated(_)), "{e}");
    let full = bytes(&edk2(Discover, MAC2));
    let e = BootRequest::parse(&full[..full.len() - 1]).unwrap_err();
    assert_eq!(
        e,
        RequestError::Truncated("options end without the End option (255)".into())
    );
}

/// A valid header from `m` followed by hand-written option bytes.
fn with_raw_options(m: &Message, opts: &[u8]) -> Vec<u8> {
    let mut b = bytes(m)[..240].to_vec();
    b.extend_from_slice(opts);
    b
}

#[test]
fn bad_option_lengths_are_rejected_without_panic() {
    let m = edk2(Discover, MAC2);
    let vc = b"PXEClient:Arch:00007:UNDI:003000";
    let mut good = vec![53, 1, 1, 93, 2, 0, 7, 60, vc.len() as u8];
    good.extend_from_slice(vc);
    good.push(255);
    assert!(BootRequest::parse(&with_raw_options(&m, &good)).is_ok());

    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Option 60 claims more bytes than there are.
        (
            vec![53, 1, 1, 60, 200, b'P', b'X', 255],
            "runs past the end",
        ),
        // Length byte missing.
        (vec![53, 1, 1, 60], "no length byte"),
        (vec![53, 2, 1, 1, 255], "option 53 has invalid length 2"),
        (vec![53, 0, 255], "option 53 has invalid length 0"),
        (
            vec![53, 1, 1, 93, 1, 7, 255],
            "option 93 has invalid length 1",
        ),
        (
            vec![53, 1, 1, 93, 3, 0, 7, 0, 255],
            "option 93 has invalid length 3",
        ),
        (
            vec![53, 1, 1, 81, 1, 0, 255],
            "option 81 has invalid length 1",
        ),
        (vec![53, 1, 1, 81, 0, 255], "option 81 has invalid length 0"),
        (
            vec![53, 1, 1, 94, 2, 1, 2, 255],
            "option 94 has invalid length 2",
        ),
        (
            vec![53, 1, 1, 80, 1, 0, 255],
            "option 80 has invalid length 1",
        ),
        (
            vec![53, 1, 1, 151, 0, 255],
            "option 151 has invalid length 0",
        ),
        (
            vec![53, 1, 1, 152, 3, 0, 0, 0, 255],
            "option 152 has invalid length 3",
        ),
        // Values dhcproto cannot decode: reported, not silently dropped.
        (
            vec![53, 1, 1, 54, 3, 10, 1, 0, 255],
            "option 54 has an invalid value",
        ),
        (
            vec![53, 1, 1, 12, 2, 0xff, 0xfe, 255],
            "option 12 has an invalid value",
        ),
        (
            vec![53, 1, 1, 3, 5, 10, 1, 0, 1, 9, 255],
            "option 3 has an invalid value",
        ),
        // Option 81 split in two (RFC 3396): 1 + 1 bytes is still too short.
        (
            vec![53, 1, 1, 81, 1, 0, 81, 1, 0, 255],
            "option 81 has invalid length 2",
        ),
    ];
    let (pcfg, scfg) = (proxy_cfg(), server_cfg());
    let mut st = State::default();
    for (opts, want) in cases {
        let data = with_raw_options(&m, &opts);
        let e = BootRequest::parse(&data).unwrap_err();
        assert!(
            e.to_string().contains(want),
            "{opts:?}: got {e}, want {want}"
        );
        assert!(feed(&pcfg, &mut st, &data).is_empty());
        assert!(feed(&scfg, &mut st, &data).is_empty());
    }
}

#[test]
fn header_checks() {
    let good = bytes(&edk2(Discover, MAC2));
    let with = |i: usize, v: u8| {
        let mut b = good.clone();
        b[i] = v;
        BootRequest::parse(&b).unwrap_err()
    };
    assert_eq!(with(0, 2), RequestError::NotBootRequest(2));
    assert_eq!(with(0, 0), RequestError::NotBootRequest(0));
    assert_eq!(with(1, 6), RequestError::NotEthernet { htype: 6, hlen: 6 });
    assert_eq!(
        with(2, 16),
        RequestError::NotEthernet { htype: 1, hlen: 16 }
    );
    assert_eq!(
        with(2, 255),
        RequestError::NotEthernet {
            htype: 1,
            hlen: 255
        }
    );
    assert!(
        matches!(with(236, 0), RequestError::Malformed(_)),
        "bad magic cookie"
    );
    // No message type: plain BOOTP.
    let e = BootRequest::parse(&with_raw_options(
        &edk2(Discover, MAC2),
        &[
            60, 9, b'P', b'X', b'E', b'C', b'l', b'i', b'e', b'n', b't', 255,
        ],
    ))
    .unwrap_err();
    assert_eq!(e, RequestError::NoMessageType);
    // Our own replies looped back are not requests.
    let cfg = proxy_cfg();
    let out = run67(&cfg, &mut State::default(), &edk2(Discover, MAC2));
    let r = reply::encode(&out.reply.unwrap().0).unwrap();
    assert_eq!(
        BootRequest::parse(&r).unwrap_err(),
        RequestError::NotBootRequest(2)
    );
}

/// Mutate valid client packets many ways and push them through the handler.
#[test]
fn fuzz_mutated_packets_through_the_handler() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let seeds: Vec<Vec<u8>> = clients().iter().map(bytes).collect();
    let cfgs = [proxy_cfg(), server_cfg()];
    let mut states = [State::default(), State::default()];
    let mut answered = 0;
    let iters = std::env::var("DHCP_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for _ in 0..iters {
        let mut b = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(6) {
            match rng.below(6) {
                0 => {
                    let i = rng.below(b.len());
                    b[i] = rng.byte();
                }
                1 => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                2 => {
                    // Poke an option-area byte (codes and lengths live there).
                    if b.len() > 240 {
                        let i = 240 + rng.below(b.len() - 240);
                        b[i] = rng.byte();
                    }
                }
                3 => {
                    let n = rng.below(b.len() + 1);
                    b.truncate(n);
                    if b.is_empty() {
                        b.push(1);
                    }
                }
                4 => {
                    let i = rng.below(b.len() + 1);
                    b.insert(i.max(240).min(b.len()), rng.byte());
                }
                _ => {
                    // Append a random option before End.
                    if b.last() == Some(&255) {
                        b.pop();
                        let len = rng.below(12);
                        b.push(rng.byte());
                        b.push(len as u8);
                        b.extend((0..len).map(|_| rng.byte()));
                        b.push(255);
                    }
                }
            }
        }
        for (k, cfg) in cfgs.iter().enumerate() {
            for m in feed(cfg, &mut states[k], &b) {
                answered += 1;
                let enc = reply::encode(&m).unwrap();
                assert_eq!(enc[0], 2);
                if k == 0 {
                    assert!(
                        m.yiaddr().is_unspecified(),
                        "proxy mode handed out an address"
                    );
                }
            }
        }
    }
    assert_eq!(
        crate::dhcp::wire::DECODER_PANICS.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(
        answered > 100,
        "mutations should not all be rejected ({answered} answered)"
    );
}

#[test]
fn a_relay_address_no_relay_agent_can_have_is_refused_and_logged() {
    use std::net::Ipv4Addr;
    let (pcfg, scfg) = (proxy_cfg(), server_cfg());
    for bad in [
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(127, 9, 9, 9),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(239, 1, 2, 3),
        Ipv4Addr::new(0, 1, 2, 3),
        Ipv4Addr::new(250, 0, 0, 1),
    ] {
        for cfg in [&pcfg, &scfg] {
            let mut st = State::default();
            let out = run67(cfg, &mut st, &with_giaddr(edk2(Discover, MAC2), bad));
            assert!(out.reply.is_none(), "{bad}");
            assert!(!out.quiet, "logged at info, not debug: {bad}");
            assert!(out.log.contains(&format!("giaddr) {bad}")), "{}", out.log);
            assert!(st.leases().is_empty());
        }
    }
    // A real relay's address is still served.
    let relay = Ipv4Addr::new(10, 2, 0, 1);
    let out = run67(
        &scfg,
        &mut State::default(),
        &with_giaddr(edk2(Discover, MAC2), relay),
    );
    assert_eq!(out.reply.unwrap().1, "10.2.0.1:67".parse().unwrap());
}
