//! TFTP: a datagram through the packet parser, the path rules and option negotiation, as the
//! server does for every request; packets that parse must survive encode → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netboot_node::tftp::{
    options::{negotiate, OptionLimits},
    packet::{Packet, MAX_BLKSIZE, MIN_BLKSIZE},
    path,
};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::parse(data) else {
        return;
    };
    let mut encoded = Vec::new();
    packet.encode(&mut encoded);
    if !matches!(packet, Packet::Error { .. }) {
        // ERROR is parsed leniently (no NUL needed), every other packet exactly.
        let again = Packet::parse(&encoded).expect("an encoded packet parses");
        assert_eq!(again, packet);
    }
    let (Packet::Rrq(req) | Packet::Wrq(req)) = packet else {
        return;
    };
    if let Ok(name) = path::normalize(&req.filename) {
        assert!(!name.starts_with('/'), "normalised {name:?} is absolute");
        assert!(
            !name.contains('\\') && !name.split('/').any(|c| matches!(c, "" | "." | "..")),
            "normalised {name:?} escapes or has odd components"
        );
    }
    let limits = OptionLimits {
        max_blksize: 1468,
        max_windowsize: 64,
        max_window_bytes: 256 * 1024,
        max_timeout_secs: 10,
    };
    for file_size in [0, 1, 1_000_000, u64::MAX] {
        let n = negotiate(&req.options, file_size, limits);
        assert!((MIN_BLKSIZE..=MAX_BLKSIZE).contains(&n.blksize));
        assert!(n.blksize <= limits.max_blksize);
        assert!(n.windowsize >= 1 && n.windowsize <= limits.max_windowsize);
        assert!(n.oack.len() <= req.options.len());
        assert!(n
            .timeout
            .is_none_or(|t| (1..=u64::from(limits.max_timeout_secs)).contains(&t.as_secs())));
    }
});
