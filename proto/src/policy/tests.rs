use super::*;
use crate::{SecretKey, TrustedKeys};

const KIOSK_1: &str = "52:54:00:00:00:01";
const KIOSK_2: &str = "52:54:00:00:00:02";
const REINSTALL: &str = "52:54:00:aa:00:01";
const STRANGER: &str = "52:54:00:ff:ff:ff";

const SOURCE: &str = r#"
default = { local = true }

[groups]
kiosks = ["52:54:00:00:00:01", "52-54-00-00-00-02"]

[defaults]
lab = { menu = true }

[[rule]]
name = "reinstall"
machines = ["52:54:00:AA:00:01"]
image = "debian-12"
once = true

[[rule]]
name = "kiosks-canary"
groups = ["kiosks"]
sites = ["branch-1"]
archs = ["efi_x64"]
image = "kiosk"
version = 7

[[rule]]
name = "kiosks"
groups = ["kiosks"]
image = "kiosk"

[[rule]]
name = "branch-2"
sites = ["branch-2"]
local = true
"#;

fn meta(key: &SecretKey, version: u64) -> SourceMeta {
    SourceMeta {
        version,
        created: 1_000,
        expires: Some(2_000),
        publisher: key.public(),
    }
}

fn policy() -> Policy {
    parse_source(SOURCE, meta(&SecretKey::from_seed([1; 32]), 5)).unwrap()
}

fn image(name: &str, version: Option<u64>) -> Action {
    Action::Image {
        name: name.parse().unwrap(),
        version,
    }
}

#[test]
fn rules_first_match_wins_with_reasons() {
    let p = policy();
    let node = NodeRef([9; 32]);
    // (what, mac, site, arch) -> (action or None for unknown, matched rule or default, skipped)
    type Want = (Option<Action>, &'static str, Vec<Mismatch>);
    let cases: Vec<(&str, &str, &str, Option<Arch>, Want)> = vec![
        (
            "listed MAC: first rule, any site and arch",
            REINSTALL,
            "branch-2",
            None,
            (
                Some(image("debian-12", None)),
                "rule 1 \"reinstall\"",
                vec![],
            ),
        ),
        (
            "group member at the canary site on its arch: pinned version",
            KIOSK_2,
            "branch-1",
            Some(Arch::EfiX64),
            (
                Some(image("kiosk", Some(7))),
                "rule 2 \"kiosks-canary\"",
                vec![Mismatch::Machine],
            ),
        ),
        (
            "group member at the canary site, other arch: falls to the next rule",
            KIOSK_1,
            "branch-1",
            Some(Arch::Bios),
            (
                Some(image("kiosk", None)),
                "rule 3 \"kiosks\"",
                vec![Mismatch::Machine, Mismatch::Arch { unknown: false }],
            ),
        ),
        (
            "group member at the canary site, arch not known",
            KIOSK_1,
            "branch-1",
            None,
            (
                Some(image("kiosk", None)),
                "rule 3 \"kiosks\"",
                vec![Mismatch::Machine, Mismatch::Arch { unknown: true }],
            ),
        ),
        (
            "group member elsewhere: order puts it before the site rule",
            KIOSK_1,
            "branch-2",
            Some(Arch::EfiX64),
            (
                Some(image("kiosk", None)),
                "rule 3 \"kiosks\"",
                vec![Mismatch::Machine, Mismatch::Site],
            ),
        ),
        (
            "other machine at a site with a rule",
            STRANGER,
            "branch-2",
            None,
            (
                Some(Action::Local),
                "rule 4 \"branch-2\"",
                vec![Mismatch::Machine; 3],
            ),
        ),
        (
            "other machine at a site with its own default",
            STRANGER,
            "lab",
            None,
            (
                Some(Action::Menu),
                "site default",
                vec![
                    Mismatch::Machine,
                    Mismatch::Machine,
                    Mismatch::Machine,
                    Mismatch::Site,
                ],
            ),
        ),
        (
            "other machine elsewhere: fleet-wide default",
            STRANGER,
            "branch-9",
            Some(Arch::EfiArm64),
            (
                Some(Action::Local),
                "default",
                vec![
                    Mismatch::Machine,
                    Mismatch::Machine,
                    Mismatch::Machine,
                    Mismatch::Site,
                ],
            ),
        ),
    ];
    for (what, mac, site, arch, (action, by, skipped)) in cases {
        let client = Client {
            mac: mac.parse().unwrap(),
            site,
            node: Some(node),
            arch,
        };
        let e = p.evaluate(&client);
        assert_eq!(e.verdict.action(), action.as_ref(), "{what}");
        let got_by = match &e.verdict {
            Verdict::Rule { label, .. } => label.clone(),
            Verdict::SiteDefault { .. } => "site default".into(),
            Verdict::Default { .. } => "default".into(),
            Verdict::Unknown => "unknown".into(),
        };
        assert_eq!(got_by, by, "{what}");
        let got: Vec<_> = e.skipped.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(got, skipped, "{what}");
    }
}

#[test]
fn explanation_says_why() {
    let p = policy();
    let e = p.evaluate(&Client {
        mac: KIOSK_2.parse().unwrap(),
        site: "branch-1",
        node: None,
        arch: Some(Arch::EfiX64),
    });
    assert_eq!(
        e.to_string(),
        "rule 1 \"reinstall\": skipped: the MAC is neither listed nor in a listed group\n\
         rule 2 \"kiosks-canary\": MATCH (MAC 52:54:00:00:00:02 is in group kiosks; \
         site branch-1 is listed; arch efi_x64 is listed) -> image kiosk v7 (pinned)"
    );
    let once = p.evaluate(&Client {
        mac: REINSTALL.parse().unwrap(),
        site: "x",
        node: None,
        arch: None,
    });
    assert!(matches!(once.verdict, Verdict::Rule { once: true, .. }));
    assert!(once
        .to_string()
        .ends_with("-> image debian-12 (newest held version) once (one-shot)"));
}

#[test]
fn node_identity_names_a_site_and_no_default_means_unknown() {
    let key = SecretKey::from_seed([1; 32]);
    let node = NodeRef([7; 32]);
    let text = format!("[[rule]]\nnodes = [\"{node}\"]\nmenu = true\n");
    let p = parse_source(&text, meta(&key, 1)).unwrap();
    let client = |node| Client {
        mac: STRANGER.parse().unwrap(),
        site: "anywhere",
        node,
        arch: None,
    };
    assert_eq!(
        p.evaluate(&client(Some(node))).verdict.action(),
        Some(&Action::Menu)
    );
    let other = p.evaluate(&client(Some(NodeRef([8; 32]))));
    assert_eq!(other.verdict, Verdict::Unknown);
    assert_eq!(other.skipped, vec![("rule 1".to_string(), Mismatch::Site)]);
    assert!(other.to_string().contains("unknown machine"));
}

#[test]
fn source_errors_name_line_and_field() {
    let key = SecretKey::from_seed([1; 32]);
    let err = |text: &str| parse_source(text, meta(&key, 1)).unwrap_err().to_string();
    let cases = [
        (
            "[[rule]]\nmachines = [\"52:54:00:00:00\"]\nlocal = true\n",
            "line 1: [[rule]] 1: machines: \"52:54:00:00:00\" is not a MAC",
        ),
        (
            "\n[[rule]]\nname = \"a\"\narchs = [\"x86\"]\nlocal = true\n",
            "line 2: [[rule]] 1 \"a\": archs: \"x86\" is not an architecture",
        ),
        (
            "[[rule]]\nimage = \"a\"\nlocal = true\n",
            "give exactly one of",
        ),
        (
            "[[rule]]\nmenu = true\nversion = 3\n",
            "version pins an image",
        ),
        (
            "[[rule]]\nlocal = true\nonce = true\n",
            "line 1: rule 1: `once` needs an image",
        ),
        (
            "\n\n[[rule]]\ngroups = [\"nope\"]\nlocal = true\n",
            "line 3: rule 1 names group \"nope\"",
        ),
        (
            "[groups]\nk = [\"zz\"]\n",
            "line 2: group k: \"zz\" is not a MAC",
        ),
        (
            "[defaults]\nlab = { image = \"../x\" }\n",
            "line 2: defaults.lab: image:",
        ),
        (
            "[[rule]]\nimage = \"a\"\ncolour = \"red\"\n",
            "unknown field `colour`",
        ),
        (
            "[[rule]]\nimage = \"a\"\nsites = [\"has space\"]\n",
            "line 1: [[rule]] 1: sites: \"has space\" is not a usable name",
        ),
    ];
    let more = [
        (
            "[groups]\n\"a b\" = []\n",
            "line 2: group \"a b\": \"a b\" is not a usable name",
        ),
        (
            "[defaults]\n\"a/b\" = { local = true }\n",
            "line 2: defaults.a/b: \"a/b\" is not a usable name",
        ),
    ];
    for (text, want) in cases.into_iter().chain(more) {
        let got = err(text);
        assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
    }
    // TOML syntax errors come with the parser's line and column.
    assert!(err("[[rule]\n").contains("line 1"), "{}", err("[[rule]\n"));
}

#[test]
fn sign_verify_round_trip_is_canonical() {
    let key = SecretKey::from_seed([1; 32]);
    let p = policy();
    let signed = SignedPolicy::sign(&p, &key).unwrap();
    let bytes = signed.signed().encode();
    assert_eq!(&bytes[..8], b"NBPOL01\n");
    let opened = SignedPolicy::open(&bytes).unwrap();
    assert_eq!(opened.policy(), &p);
    assert_eq!(opened.id(), signed.id());
    assert_eq!(opened.signed().encode(), bytes);
}

#[test]
fn forged_altered_and_wrong_signer_are_refused() {
    let key = SecretKey::from_seed([1; 32]);
    let other = SecretKey::from_seed([2; 32]);
    let p = policy();
    assert!(matches!(
        SignedPolicy::sign(&p, &other),
        Err(SignError::WrongSigner { .. })
    ));
    let bytes = SignedPolicy::sign(&p, &key).unwrap().signed().encode();
    // A signature by another key over the same body.
    let mut forged = SignedPolicy::decode(&bytes).unwrap();
    forged.signature = other.sign(&envelope_message(&forged.body));
    assert_eq!(
        forged.verify().unwrap_err(),
        PolicyDecodeError::BadSignature(key.public())
    );
    // Every flipped bit breaks it (magic, length, body, signature).
    for i in (0..bytes.len()).step_by(3) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(
            SignedPolicy::open(&bad).is_err(),
            "flip in byte {i} accepted"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        SignedPolicy::open(&long).unwrap_err(),
        PolicyDecodeError::TrailingBytes(1)
    );
}

fn envelope_message(body: &[u8]) -> Vec<u8> {
    crate::envelope::signed_message(b"netboot signed boot policy v1\0", body)
}

#[test]
fn a_release_is_not_a_policy_and_back() {
    let key = SecretKey::from_seed([1; 32]);
    let policy_bytes = SignedPolicy::sign(&policy(), &key)
        .unwrap()
        .signed()
        .encode();
    // Same framing, other magic: each kind refuses the other's bytes outright...
    assert_eq!(
        crate::SignedRelease::open(&policy_bytes).unwrap_err(),
        crate::DecodeError::BadMagic
    );
    // ...and with the magic swapped, the signature (other domain) or the body still fails.
    let mut as_release = policy_bytes.clone();
    as_release[..8].copy_from_slice(b"NBREL01\n");
    assert!(crate::SignedRelease::open(&as_release).is_err());
    // A policy signature made over the release domain never verifies as a policy.
    let signed = SignedPolicy::decode(&policy_bytes).unwrap();
    let mut cross = signed.clone();
    let mut msg = b"netboot signed release v1\0".to_vec();
    msg.extend_from_slice(&signed.body);
    cross.signature = key.sign(&msg);
    assert_eq!(
        cross.verify().unwrap_err(),
        PolicyDecodeError::BadSignature(key.public())
    );
}

#[test]
fn admission_like_releases() {
    let key = SecretKey::from_seed([1; 32]);
    let stranger = SecretKey::from_seed([2; 32]);
    let trusted = TrustedKeys::new([key.public()]);
    let p = policy(); // v5, created 1000, expires 2000
    assert_eq!(admit_policy(&p, &trusted, 1_500, Some(4)), Ok(()));
    assert_eq!(admit_policy(&p, &trusted, 1_500, None), Ok(()));
    assert_eq!(
        admit_policy(&p, &trusted, 2_000, None),
        Err(PolicyRefusal::Expired {
            version: 5,
            expires: 2_000,
            now: 2_000
        })
    );
    for older_or_same in [5, 6] {
        assert_eq!(
            admit_policy(&p, &trusted, 1_500, Some(older_or_same)),
            Err(PolicyRefusal::NotNewer {
                version: 5,
                current: older_or_same
            })
        );
    }
    let foreign = parse_source(SOURCE, meta(&stranger, 9)).unwrap();
    assert!(matches!(
        admit_policy(&foreign, &trusted, 1_500, None),
        Err(PolicyRefusal::Untrusted { .. })
    ));
    // The message a sysadmin sees says it is a policy, not a release.
    assert!(admit_policy(&p, &trusted, 1_500, Some(5))
        .unwrap_err()
        .to_string()
        .starts_with("boot policy v5"));
}

#[test]
fn invalid_policies_are_refused_at_signing() {
    let key = SecretKey::from_seed([1; 32]);
    let mut p = policy();
    p.version = 0;
    assert_eq!(
        SignedPolicy::sign(&p, &key).unwrap_err(),
        SignError::Invalid(PolicyError::ZeroVersion)
    );
    let mut p = policy();
    p.expires = Some(p.created);
    assert!(matches!(
        SignedPolicy::sign(&p, &key).unwrap_err(),
        SignError::Invalid(PolicyError::ExpiresBeforeCreated { .. })
    ));
    let mut p = policy();
    p.rules[1].action = image("kiosk", Some(0));
    assert!(matches!(
        SignedPolicy::sign(&p, &key).unwrap_err(),
        SignError::Invalid(PolicyError::ZeroPin(_))
    ));
    // A policy too large for the envelope is refused when signed, not when a node reads it.
    let mut p = policy();
    let many = (0..180_000u32).map(|i| {
        let [a, b, c, d] = i.to_be_bytes();
        Mac([2, 0, a, b, c, d])
    });
    p.groups.insert("huge".into(), many.collect());
    assert_eq!(
        SignedPolicy::sign(&p, &key).unwrap_err(),
        SignError::TooLarge
    );
}
