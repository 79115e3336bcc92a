//! A boot as the servers report it, step by step, in server and proxy mode, and the bounds.

use std::net::Ipv4Addr;

use netboot_proto::{BootEntry, CmdlineTemplate, FileEntry, Release, ReleaseSpec, SecretKey};

use super::*;
use crate::dhcp::ClientArch;

const MAC: &str = "52:54:00:12:34:56";
const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn dhcp(ipxe: bool, ip: Option<Ipv4Addr>) -> DhcpSeen {
    DhcpSeen {
        mac: mac(MAC),
        mode: "server",
        arch: Some(ClientArch::BiosX86),
        vendor: "PXEClient".into(),
        boot_client: true,
        ipxe,
        ip,
        answer: DhcpAnswer::Boot,
    }
}

fn fetch(stage: Stage, file: &str, via: Via) -> Fetch {
    Fetch {
        stage,
        image: matches!(stage, Stage::Config | Stage::Kernel | Stage::Initrd)
            .then(|| ImageRef::new(&"debian".parse().unwrap(), 7)),
        file: file.into(),
        via,
    }
}

fn stages(b: &Boot) -> Vec<(Stage, u64)> {
    b.stages.iter().map(|(s, t)| (*s, *t)).collect()
}

#[test]
fn a_server_mode_boot_from_firmware_to_initrd() {
    let mut c = Clients::new(Limits::default());
    c.dhcp(dhcp(false, Some(IP)), 1_000);
    c.fetched(
        IP,
        fetch(Stage::FirstStage, "undionly.kpxe", Via::Tftp),
        2_000,
    );
    // iPXE's own DHCP continues the boot.
    c.dhcp(dhcp(true, Some(IP)), 3_000);
    c.fetched(IP, fetch(Stage::Config, "/boot.ipxe", Via::Http), 4_000);
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 5_000);
    c.fetched(IP, fetch(Stage::Initrd, "initrd.img", Via::Http), 6_000);
    assert!(
        !c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 7_000),
        "a re-fetch reaches no new stage"
    );

    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 1, "{boots:#?}");
    let b = &boots[0];
    assert_eq!(b.mac, Some(mac(MAC)));
    assert_eq!(b.arch.as_deref(), Some("BIOS x86"));
    assert_eq!(
        stages(b),
        [
            (Stage::DhcpAnswered, 1_000),
            (Stage::FirstStage, 2_000),
            (Stage::Config, 4_000),
            (Stage::Kernel, 5_000),
            (Stage::Initrd, 6_000),
        ],
        "each stage keeps the time it was first reached"
    );
    assert_eq!(b.furthest(), Some(Stage::Initrd));
    assert_eq!(
        b.image.as_ref().map(|i| (i.name.as_str(), i.version)),
        Some(("debian", 7))
    );
    assert_eq!(b.last_file, Some(("vmlinuz".into(), Via::Http)));
    let m = c.machine(&mac(MAC)).unwrap();
    assert_eq!((m.first_seen_ms, m.last_seen_ms), (1_000, 7_000));
    assert_eq!(m.vendor.as_deref(), Some("PXEClient"));
    assert_eq!(m.ip, Some(IP));
}

#[test]
fn proxy_mode_first_stage_joins_the_machine_once_ipxe_names_it() {
    let mut c = Clients::new(Limits::default());
    // Proxy mode: the firmware's DISCOVER carries no address.
    c.dhcp(dhcp(false, None), 1_000);
    c.fetched(
        IP,
        fetch(Stage::FirstStage, "undionly.kpxe", Via::Tftp),
        2_000,
    );
    assert_eq!(c.recent_boots(10).len(), 2, "the address is not named yet");
    c.identified(mac(MAC), IP, 3_000);
    c.fetched(IP, fetch(Stage::Config, "/boot.ipxe", Via::Http), 3_000);
    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 1, "{boots:#?}");
    assert_eq!(
        stages(&boots[0]),
        [
            (Stage::DhcpAnswered, 1_000),
            (Stage::FirstStage, 2_000),
            (Stage::Config, 3_000)
        ]
    );
    assert_eq!(boots[0].mac, Some(mac(MAC)));
}

#[test]
fn an_address_named_long_after_the_last_boot_joins_a_new_boot() {
    let mut c = Clients::new(Limits::default());
    c.dhcp(dhcp(false, None), 1_000);
    let later = 1_000 + Limits::default().new_boot_after_ms + 5_000;
    c.fetched(
        IP,
        fetch(Stage::FirstStage, "undionly.kpxe", Via::Tftp),
        later,
    );
    c.identified(mac(MAC), IP, later + 1_000);
    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 2, "{boots:#?}");
    assert_eq!(stages(&boots[0]), [(Stage::FirstStage, later)]);
    assert_eq!(boots[0].mac, Some(mac(MAC)));
    assert_eq!(stages(&boots[1]), [(Stage::DhcpAnswered, 1_000)]);
}

#[test]
fn a_reboot_of_a_machine_whose_rom_is_ipxe_starts_a_new_boot() {
    let mut c = Clients::new(Limits::default());
    // Chained iPXE: firmware DHCP, the first stage, then iPXE's DHCP: one boot.
    c.dhcp(dhcp(false, Some(IP)), 1_000);
    c.fetched(
        IP,
        fetch(Stage::FirstStage, "undionly.kpxe", Via::Tftp),
        2_000,
    );
    c.dhcp(dhcp(true, Some(IP)), 3_000);
    assert_eq!(c.recent_boots(10).len(), 1);
    c.fetched(IP, fetch(Stage::Config, "boot.ipxe", Via::Http), 4_000);
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 5_000);
    // The NIC's iPXE ROM asks again a minute later, no firmware request before it: a reboot.
    c.dhcp(dhcp(true, Some(IP)), 60_000);
    assert_eq!(c.recent_boots(10).len(), 2);
    let current = c.current_boot(mac(MAC)).unwrap();
    assert_eq!(current.furthest(), Some(Stage::DhcpAnswered));
    assert_eq!(stages(current), [(Stage::DhcpAnswered, 60_000)]);
}

#[test]
fn a_reboot_starts_a_new_boot_and_a_stale_one_too() {
    let mut c = Clients::new(Limits::default());
    c.dhcp(dhcp(false, Some(IP)), 1_000);
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 2_000);
    // The firmware asks again: the machine rebooted.
    c.dhcp(dhcp(false, Some(IP)), 60_000);
    assert_eq!(c.recent_boots(10).len(), 2);
    assert_eq!(
        c.current_boot(mac(MAC)).unwrap().furthest(),
        Some(Stage::DhcpAnswered)
    );
    // Firmware retrying DHCP within a boot (no answer yet) stays in it.
    c.dhcp(dhcp(false, Some(IP)), 61_000);
    assert_eq!(c.recent_boots(10).len(), 2);
    // Long after its last event, even iPXE's request starts a new boot.
    c.dhcp(
        dhcp(true, Some(IP)),
        61_000 + Limits::default().new_boot_after_ms + 1,
    );
    assert_eq!(c.recent_boots(10).len(), 3);
}

#[test]
fn ignored_requests_say_why_and_other_dhcp_clients_are_not_boots() {
    let mut c = Clients::new(Limits::default());
    let mut os = dhcp(false, None);
    os.boot_client = false;
    os.vendor = "\"udhcp 1.35\"".into();
    os.answer = DhcpAnswer::Ignored {
        reason: "vendor class is \"udhcp 1.35\" (proxy mode)".into(),
        quiet: false,
    };
    assert_eq!(os.outcome_label(), "ignored_not_boot_client");
    c.dhcp(os, 1_000);
    assert!(
        c.recent_boots(10).is_empty(),
        "the booted OS's DHCP is not a boot"
    );
    let m = c.machine(&mac(MAC)).unwrap();
    assert_eq!(m.vendor.as_deref(), Some("\"udhcp 1.35\""));
    assert_eq!(
        m.not_answered.as_deref(),
        Some("vendor class is \"udhcp 1.35\" (proxy mode)"),
        "a machine never booted here is listed with why it was ignored"
    );
    let mut refused = dhcp(false, None);
    refused.answer = DhcpAnswer::Ignored {
        reason: "no free address in the pool".into(),
        quiet: false,
    };
    assert_eq!(
        (refused.outcome_label(), refused.client_label()),
        ("ignored", "firmware")
    );
    c.dhcp(refused, 2_000);
    let b = &c.recent_boots(1)[0];
    assert_eq!(b.furthest(), Some(Stage::DhcpIgnored));
    assert_eq!(b.ignored.as_deref(), Some("no free address in the pool"));
    assert_eq!(
        c.machine(&mac(MAC)).unwrap().not_answered.as_deref(),
        Some("no free address in the pool")
    );
    // Answered at last: no longer listed as not answered, and the booted OS's own DHCP
    // (ignored, not a boot client) does not make it so again.
    c.dhcp(dhcp(false, Some(IP)), 3_000);
    let mut os = dhcp(false, None);
    os.boot_client = false;
    os.answer = DhcpAnswer::Ignored {
        reason: "not a PXE client".into(),
        quiet: false,
    };
    c.dhcp(os, 4_000);
    let m = c.machine(&mac(MAC)).unwrap();
    assert_eq!(m.not_answered, None);
    assert_eq!(
        m.last_boot.as_ref().and_then(Boot::furthest),
        Some(Stage::DhcpAnswered)
    );
}

#[test]
fn machines_and_boots_stay_bounded() {
    // With room for 3, the oldest machine goes when a 4th arrives (an eighth of 3, at least one).
    let mut c = Clients::new(Limits {
        machines: 3,
        boots: 2,
        new_boot_after_ms: 1_000,
    });
    for i in 0..5u8 {
        let mut seen = dhcp(false, Some(Ipv4Addr::new(10, 0, 0, i)));
        seen.mac = MacAddr([0x52, 0x54, 0, 0, 0, i]);
        c.dhcp(seen, u64::from(i) * 10);
    }
    let macs: Vec<String> = c.machines().iter().map(|m| m.mac.to_string()).collect();
    assert_eq!(
        macs,
        [
            "52:54:00:00:00:04",
            "52:54:00:00:00:03",
            "52:54:00:00:00:02"
        ],
        "the least recently seen are evicted, newest first"
    );
    let boots = c.recent_boots(10);
    assert_eq!(boots.len(), 2);
    assert_eq!(boots[0].mac, Some(MacAddr([0x52, 0x54, 0, 0, 0, 4])));
    // An evicted machine's address no longer names it: its fetches are an unnamed boot.
    c.fetched(
        Ipv4Addr::new(10, 0, 0, 0),
        fetch(Stage::FirstStage, "x", Via::Tftp),
        100,
    );
    assert_eq!(c.recent_boots(1)[0].mac, None);
}

#[test]
fn kernel_initrd_and_iso_are_stages_other_files_are_not() {
    let f = |p: &str| FileEntry {
        path: p.parse().unwrap(),
        size: 1,
        hash: blake3::hash(p.as_bytes()),
    };
    let release = |boot| {
        Release::new(ReleaseSpec {
            name: "debian".parse().unwrap(),
            version: 1,
            created: 1,
            expires: None,
            publisher: SecretKey::from_seed([1; 32]).public(),
            files: vec![
                f("vmlinuz"),
                f("boot/initrd.img"),
                f("fs.squashfs"),
                f("d.iso"),
            ],
            boot,
        })
        .unwrap()
    };
    let linux = release(Some(BootEntry::Linux {
        kernel: "vmlinuz".parse().unwrap(),
        initrds: vec!["boot/initrd.img".parse().unwrap()],
        cmdline: CmdlineTemplate::parse("").unwrap(),
    }));
    assert_eq!(stage_of_file(&linux, "vmlinuz"), Some(Stage::Kernel));
    assert_eq!(
        stage_of_file(&linux, "boot/initrd.img"),
        Some(Stage::Initrd)
    );
    assert_eq!(stage_of_file(&linux, "fs.squashfs"), None);
    let iso = release(Some(BootEntry::Iso {
        iso: "d.iso".parse().unwrap(),
    }));
    assert_eq!(stage_of_file(&iso, "d.iso"), Some(Stage::Kernel));
    assert_eq!(stage_of_file(&release(None), "vmlinuz"), None);
}

#[test]
fn a_proxy_boot_is_not_stopped_by_the_requests_that_belong_to_the_site_server() {
    // The sequence a BIOS client made in the demo: firmware DISCOVER (proxy offer), its
    // REQUEST on port 67 (the site server's), iPXE's DISCOVER and REQUEST, then the files.
    let site_request = || {
        let mut r = dhcp(false, None);
        r.mode = "proxy";
        r.answer = DhcpAnswer::Ignored {
            reason: "REQUEST on port 67 belongs to the site DHCP server, ignored (proxy mode)"
                .into(),
            quiet: false,
        };
        r
    };
    let mut c = Clients::new(Limits::default());
    c.dhcp(site_request(), 500);
    assert_eq!(c.recent_boots(1)[0].furthest(), Some(Stage::DhcpIgnored));
    c.dhcp(dhcp(false, None), 1_000);
    assert_eq!(
        c.recent_boots(1)[0].ignored,
        None,
        "answered after all: the earlier refusal is not why it stopped"
    );
    c.dhcp(site_request(), 1_100);
    c.identified(mac(MAC), IP, 2_000);
    c.dhcp(
        DhcpSeen {
            ipxe: true,
            ..site_request()
        },
        2_100,
    );
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 3_000);
    c.fetched(IP, fetch(Stage::Initrd, "initrd.img", Via::Http), 4_000);
    let b = &c.recent_boots(1)[0];
    assert_eq!(b.furthest(), Some(Stage::Initrd));
    assert_eq!(b.ignored, None);
    assert_eq!(c.recent_boots(10).len(), 1, "one boot, not one per request");
}

#[test]
fn a_machine_keeps_how_far_its_last_boot_got_after_the_boot_ages_out() {
    let mut c = Clients::new(Limits {
        machines: 10,
        boots: 1,
        new_boot_after_ms: 1_000,
    });
    c.dhcp(dhcp(false, Some(IP)), 1_000);
    c.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 2_000);
    let mut other = dhcp(false, Some(Ipv4Addr::new(10, 0, 0, 51)));
    other.mac = mac("52:54:00:00:00:01");
    c.dhcp(other, 3_000);
    assert_eq!(c.recent_boots(10).len(), 1, "the first boot aged out");
    let m = c.machine(&mac(MAC)).unwrap();
    let last = m.last_boot.as_ref().expect("kept on the machine");
    assert_eq!(
        stages(last),
        [(Stage::DhcpAnswered, 1_000), (Stage::Kernel, 2_000)]
    );
    assert_eq!(m.image, Some(ImageRef::new(&"debian".parse().unwrap(), 7)));
    assert_eq!(m.rule, None, "nothing names a policy rule yet");
}

/// A record with a booted machine, an ignored one and an unnamed boot.
fn sample() -> Clients {
    let mut c = Clients::new(Limits::default());
    c.dhcp(dhcp(false, Some(IP)), 1_000);
    c.fetched(IP, fetch(Stage::Initrd, "initrd.img", Via::Http), 2_000);
    let mut printer = dhcp(false, None);
    printer.mac = mac("00:11:22:33:44:55");
    printer.boot_client = false;
    printer.answer = DhcpAnswer::Ignored {
        reason: "not a PXE client".into(),
        quiet: false,
    };
    c.dhcp(printer, 3_000);
    c.fetched(
        Ipv4Addr::new(10, 0, 0, 99),
        fetch(Stage::FirstStage, "ipxe.efi", Via::Tftp),
        4_000,
    );
    c
}

#[test]
fn the_saved_record_reads_back_the_same_and_goes_on_recording() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(saved::FILE_NAME);
    let before = sample();
    saved::save(&path, &saved::Saved::of(&before)).unwrap();
    let mut after = saved::load(&path, Limits::default())
        .unwrap()
        .expect("the file exists");
    assert_eq!(after.machines(), before.machines());
    assert_eq!(after.recent_boots(10), before.recent_boots(10));
    // What was learnt goes on working: the address still names the machine, its boot goes
    // on, and new boots get new ids.
    after.fetched(IP, fetch(Stage::Kernel, "vmlinuz", Via::Http), 2_500);
    assert_eq!(after.recent_boots(10).len(), 2, "the same boot went on");
    let m = after.machine(&mac(MAC)).unwrap();
    assert_eq!(
        m.last_boot.as_ref().map(stages).unwrap(),
        [
            (Stage::DhcpAnswered, 1_000),
            (Stage::Kernel, 2_500),
            (Stage::Initrd, 2_000)
        ]
    );
    let mut again = dhcp(false, Some(IP));
    again.mac = mac("52:54:00:00:00:02");
    after.dhcp(again, 10_000);
    let ids: Vec<u64> = after.recent_boots(10).iter().map(|b| b.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] > ids[1] && ids[1] > ids[2], "{ids:?}");
    assert_eq!(
        saved::load(&dir.path().join("absent"), Limits::default())
            .unwrap()
            .map(|c| c.machine_count()),
        None
    );
}

#[test]
fn a_damaged_or_foreign_file_is_set_aside_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(saved::FILE_NAME);
    for (content, says) in [
        (
            &b"{\"format\": 1, \"machines\": [{\"mac\": \"zz\""[..],
            "is not a client record",
        ),
        (
            &b"{\"format\": 99, \"machines\": [], \"boots\": []}"[..],
            "has format 99",
        ),
    ] {
        std::fs::write(&path, content).unwrap();
        let err = saved::load(&path, Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(says) && err.contains(&path.display().to_string()),
            "{err}"
        );
        let c = saved::load_or_set_aside(&path, Limits::default());
        assert_eq!(c.machine_count(), 0);
        assert!(!path.exists(), "moved out of the way");
        assert_eq!(
            std::fs::read(saved::set_aside_path(&path)).unwrap(),
            content,
            "kept for a look"
        );
    }
}

#[test]
fn a_saved_record_is_cut_to_the_limits_it_is_read_with() {
    let mut big = Clients::new(Limits::default());
    for i in 0..6u8 {
        let mut seen = dhcp(false, Some(Ipv4Addr::new(10, 0, 0, i)));
        seen.mac = MacAddr([0x52, 0x54, 0, 0, 0, i]);
        big.dhcp(seen, u64::from(i) * 10);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(saved::FILE_NAME);
    saved::save(&path, &saved::Saved::of(&big)).unwrap();
    let small = Limits {
        machines: 2,
        boots: 3,
        new_boot_after_ms: 1_000,
    };
    let c = saved::load(&path, small).unwrap().unwrap();
    let macs: Vec<String> = c.machines().iter().map(|m| m.mac.to_string()).collect();
    assert_eq!(
        macs,
        ["52:54:00:00:00:05", "52:54:00:00:00:04"],
        "the most recently seen"
    );
    let boots: Vec<Option<MacAddr>> = c.recent_boots(10).iter().map(|b| b.mac).collect();
    assert_eq!(boots.len(), 3, "the newest boots");
    assert_eq!(boots[0], Some(MacAddr([0x52, 0x54, 0, 0, 0, 5])));
    // An address of a machine that was cut no longer names it.
    assert!(c.current_boot(MacAddr([0x52, 0x54, 0, 0, 0, 0])).is_none());
}

#[test]
fn the_table_lists_unknown_machines_with_why() {
    let c = sample();
    let view = ClientsView {
        generated_ms: 63_000,
        machines: c.machines(),
    };
    let all = text::render(&view, false);
    assert!(all.starts_with("MAC"), "{all}");
    assert!(
        all.contains("52:54:00:12:34:56  BIOS x86  PXEClient  61 s ago   debian v7  initrd\n"),
        "{all}"
    );
    let unknown = text::render(&view, true);
    assert!(!unknown.contains("52:54:00:12:34:56"), "{unknown}");
    assert!(unknown.contains("00:11:22:33:44:55"), "{unknown}");
    assert!(
        unknown.contains("not answered: not a PXE client"),
        "{unknown}"
    );
}

#[test]
fn a_one_shot_is_done_when_the_record_sees_kernel_and_initrd_and_the_list_says_so() {
    let at = |ms: u64| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let log = ClientLog::default();
    let key = OnceKey {
        mac: mac(MAC),
        policy_version: 5,
        rule: "rule 1 \"reinstall\"".into(),
    };
    log.dhcp(dhcp(false, Some(IP)), at(1_000));
    assert_eq!(
        log.once_given(key.clone(), at(2_000)),
        OnceState::Pending { given_ms: 2_000 }
    );
    let row = |now_ms| {
        let view = ClientsView {
            generated_ms: now_ms,
            machines: log.machines(),
        };
        text::render(&view, false)
    };
    assert!(
        row(3_000).contains("dhcp_answered; once: pending, rule 1 \"reinstall\" of policy v5"),
        "{}",
        row(3_000)
    );
    log.fetched(
        IP.into(),
        fetch(Stage::Kernel, "vmlinuz", Via::Http),
        at(3_000),
    );
    assert!(
        !log.once_given(key.clone(), at(3_500)).is_done(),
        "kernel only"
    );
    let before = log.changes();
    log.fetched(
        IP.into(),
        fetch(Stage::Initrd, "initrd.img", Via::Http),
        at(4_000),
    );
    assert!(log.changes() > before, "the saver sees the change");
    assert_eq!(
        log.once_given(key.clone(), at(9_000)),
        OnceState::Done {
            given_ms: 2_000,
            done_ms: 4_000,
            by: once::DoneBy::Fetched
        },
        "its next boot gets local disk"
    );
    assert!(
        row(64_000).contains(
            "initrd; once: done 60 s ago (kernel and initrd fetched), rule 1 \"reinstall\" of policy v5"
        ),
        "{}",
        row(64_000)
    );
    // Nothing pending any more: the callback has nothing to mark.
    assert_eq!(
        log.once_called_back(mac(MAC), at(10_000)),
        Err(NotPending(mac(MAC)))
    );
    // The file form reads back the same.
    let (_, _, entries) = log.to_save();
    let dir = tempfile::tempdir().unwrap();
    let path = saved::once_path(&dir.path().join(saved::FILE_NAME));
    std::fs::write(
        &path,
        serde_json::to_vec(&saved::SavedOnce { format: 1, entries }).unwrap(),
    )
    .unwrap();
    let back = saved::load_once_or_set_aside(&path);
    assert!(back.state(&key).is_some_and(|s| s.is_done()));
    std::fs::write(&path, b"{\"format\": 1, \"entries\": [").unwrap();
    assert!(saved::load_once_or_set_aside(&path).is_empty());
    assert!(
        saved::set_aside_path(&path).exists(),
        "a damaged ledger is set aside"
    );
}
