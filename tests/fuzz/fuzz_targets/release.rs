//! Releases, as they arrive from disk (`.release` files), bundles and fleet peers.
//!
//! 1. The bytes as an envelope: `decode` → `verify`. Whatever verifies must be the one
//!    canonical encoding (re-encoding gives the same bytes, hence the same ReleaseId) and
//!    goes through the admission rules.
//! 2. The bytes as the fields of a release a publisher builds: whatever `build_and_sign`
//!    accepts must open again, unchanged, from its encoding.
#![no_main]

use libfuzzer_sys::{
    arbitrary::{Result as ArbResult, Unstructured},
    fuzz_target,
};
use netboot_proto::{
    admit, build_and_sign, BootEntry, CmdlineTemplate, FileEntry, ReleaseSpec, SecretKey,
    SignedRelease, TrustedKeys,
};

fn check_opened(data: &[u8]) {
    let Ok(verified) = SignedRelease::open(data) else {
        return;
    };
    assert_eq!(
        verified.signed().encode(),
        data,
        "verified bytes are canonical"
    );
    let release = verified.release();
    let trusted = TrustedKeys::new([release.publisher]);
    let now = release.created;
    let _ = admit(release, &trusted, now, Some(release.version));
    let _ = admit(release, &trusted, now, release.version.checked_sub(1));
}

fn spec(u: &mut Unstructured<'_>, key: &SecretKey) -> ArbResult<Option<ReleaseSpec>> {
    let Ok(name) = u.arbitrary::<&str>()?.parse() else {
        return Ok(None);
    };
    let mut files = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let Ok(path) = u.arbitrary::<&str>()?.parse() else {
            return Ok(None);
        };
        files.push(FileEntry {
            path,
            size: u.arbitrary()?,
            hash: blake3::Hash::from_bytes(u.arbitrary()?),
        });
    }
    let boot = match u.int_in_range(0..=2u8)? {
        0 => None,
        1 => {
            let kernel = u.arbitrary::<&str>()?.parse();
            let initrd = u.arbitrary::<&str>()?.parse();
            let cmdline = CmdlineTemplate::parse(u.arbitrary::<&str>()?);
            match (kernel, initrd, cmdline) {
                (Ok(kernel), Ok(initrd), Ok(cmdline)) => Some(BootEntry::Linux {
                    kernel,
                    initrds: vec![initrd],
                    cmdline,
                }),
                _ => return Ok(None),
            }
        }
        _ => match u.arbitrary::<&str>()?.parse() {
            Ok(iso) => Some(BootEntry::Iso { iso }),
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(ReleaseSpec {
        name,
        version: u.arbitrary()?,
        created: u.arbitrary()?,
        expires: u.arbitrary()?,
        publisher: key.public(),
        files,
        boot,
    }))
}

fuzz_target!(|data: &[u8]| {
    check_opened(data);
    let key = SecretKey::from_seed([7; 32]);
    let Ok(Some(spec)) = spec(&mut Unstructured::new(data), &key) else {
        return;
    };
    let Ok(built) = build_and_sign(spec, &key) else {
        return;
    };
    let bytes = built.signed().encode();
    let opened = SignedRelease::open(&bytes).expect("a release we signed opens");
    assert_eq!(opened.release(), built.release());
    assert_eq!(opened.id(), built.id());
    check_opened(&bytes);
});
