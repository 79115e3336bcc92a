//! proxyDHCP: what each kind of client gets, and what nobody gets.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, MessageType::*};

use super::clients::*;
use crate::dhcp::decide::LocalPort;
use crate::dhcp::{BootFiles, DhcpConfig, State};

const PXE43: &[u8] = &[6, 1, 8, 255];

#[test]
fn ipxe_bios_discover_gets_script_url_not_ipxe_again() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let m = ipxe(Discover, MAC1, 0);
    let out = run67(&cfg, &mut st, &m);
    let w = wire(&out);
    assert_reply_basics(&w, &m);
    assert_eq!(w.msg_type(), OFFER);
    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.siaddr, SERVER_IP);
    assert_eq!(w.file, SCRIPT_URL);
    assert_eq!(w.opt_str(67).as_deref(), Some(SCRIPT_URL));
    assert_eq!(w.opt_str(60).as_deref(), Some("PXEClient"));
    assert_eq!(w.opt(97), Some(&uuid97()[..]));
    assert_eq!(w.opt(43), None, "iPXE gets no PXE vendor options");
    assert_eq!(w.opt(66), None, "no TFTP server for an HTTP URL");
    assert_eq!(w.opt(51), None, "proxy never leases");
    assert_eq!(w.flags & 0x8000, 0x8000, "broadcast flag echoed");
    assert_eq!(w.dest, sa(BCAST68));
    assert!(out.log.contains("52:54:00:12:34:01"), "{}", out.log);
    assert!(out.log.contains("iPXE gets its boot script"), "{}", out.log);
    assert!(out.log.contains("arch=BIOS x86"), "{}", out.log);
}

#[test]
fn ipxe_efi_discover_gets_script_url() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let w = wire(&run67(&cfg, &mut st, &ipxe(Discover, MAC1, 7)));
    assert_eq!(w.file, SCRIPT_URL);
    assert_eq!(w.opt(43), None);
}

#[test]
fn ipxe_detected_by_option_175_alone() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let mut m = ipxe(Discover, MAC1, 0);
    m.opts_mut().remove(dhcproto::v4::OptionCode::UserClass);
    let w = wire(&run67(&cfg, &mut st, &m));
    assert_eq!(w.file, SCRIPT_URL);
}

#[test]
fn edk2_discover_gets_ipxe_efi_with_option_43() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let m = edk2(Discover, MAC2);
    let out = run67(&cfg, &mut st, &m);
    let w = wire(&out);
    assert_reply_basics(&w, &m);
    assert_eq!(w.msg_type(), OFFER);
    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.siaddr, SERVER_IP);
    assert_eq!(w.file, "ipxe.efi");
    assert_eq!(w.opt_str(67).as_deref(), Some("ipxe.efi"));
    assert_eq!(w.opt_str(66).as_deref(), Some("10.1.0.2"));
    assert_eq!(w.opt_str(60).as_deref(), Some("PXEClient"));
    assert_eq!(
        w.opt(43),
        Some(PXE43),
        "EDK2 rejects PXEClient without 43 (PXE-E16)"
    );
    assert_eq!(w.opt(97), Some(&uuid97()[..]));
    assert_eq!(w.dest, sa(BCAST68));
    assert!(out.log.contains("firmware"), "{}", out.log);
    assert!(out.log.contains("tftp file ipxe.efi"), "{}", out.log);
}

#[test]
fn firmware_boot_file_follows_config() {
    let cfg = DhcpConfig {
        boot_files: BootFiles {
            efi_x64: "snponly.efi".into(),
            ..boot_files()
        },
        ..proxy_cfg()
    };
    let mut st = State::default();
    assert_eq!(
        wire(&run67(&cfg, &mut st, &edk2(Discover, MAC2))).file,
        "snponly.efi"
    );
    // EFI BC (9) is x86-64 too.
    let bc = firmware(Discover, MAC2, 9, "PXEClient:Arch:00009:UNDI:003000");
    assert_eq!(wire(&run67(&cfg, &mut st, &bc)).file, "snponly.efi");
    // A BIOS PXE ROM that is not iPXE.
    let bios = firmware(Discover, MAC3, 0, "PXEClient:Arch:00000:UNDI:002001");
    let w = wire(&run67(&cfg, &mut st, &bios));
    assert_eq!(w.file, "undionly.kpxe");
    assert_eq!(w.opt(43), Some(PXE43));
}

#[test]
fn arch_from_option_60_when_93_is_missing() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let mut m = edk2(Discover, MAC2);
    m.opts_mut()
        .remove(dhcproto::v4::OptionCode::ClientSystemArchitecture);
    assert_eq!(wire(&run67(&cfg, &mut st, &m)).file, "ipxe.efi");
    let mut b = firmware(Discover, MAC3, 0, "PXEClient:Arch:00000:UNDI:002001");
    b.opts_mut()
        .remove(dhcproto::v4::OptionCode::ClientSystemArchitecture);
    assert_eq!(wire(&run67(&cfg, &mut st, &b)).file, "undionly.kpxe");
    // Neither 93 nor an Arch field: nothing, and the log says why.
    let mut n = firmware(Discover, MAC3, 0, "PXEClient");
    n.opts_mut()
        .remove(dhcproto::v4::OptionCode::ClientSystemArchitecture);
    let out = run67(&cfg, &mut st, &n);
    assert!(out.reply.is_none());
    assert!(out.log.contains("no architecture"), "{}", out.log);
}

#[test]
fn uefi_http_boot_gets_full_url_and_httpclient() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let m = http_boot(Discover, MAC1);
    let out = run67(&cfg, &mut st, &m);
    let w = wire(&out);
    assert_reply_basics(&w, &m);
    assert_eq!(w.msg_type(), OFFER);
    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.file, "http://10.1.0.2:8080/ipxe.efi");
    assert_eq!(
        w.opt_str(67).as_deref(),
        Some("http://10.1.0.2:8080/ipxe.efi")
    );
    assert_eq!(w.opt_str(60).as_deref(), Some("HTTPClient"));
    assert_eq!(w.opt(43), None);
    assert_eq!(w.opt(66), None);
    assert_eq!(w.opt(97), Some(&uuid97()[..]));
    assert!(out.log.contains("UEFI HTTP boot"), "{}", out.log);
}

#[test]
fn long_http_url_goes_in_option_67_only() {
    let long = format!("http://10.1.0.2:8080/{}/boot.ipxe", "x".repeat(200));
    let cfg = DhcpConfig {
        boot_files: BootFiles {
            ipxe_script_url: long.clone(),
            ..boot_files()
        },
        ..proxy_cfg()
    };
    let w = wire(&run67(
        &cfg,
        &mut State::default(),
        &ipxe(Discover, MAC1, 0),
    ));
    assert_eq!(w.file, "");
    assert_eq!(
        w.opt_str(67),
        Some(long),
        "split over two option 67 instances (RFC 3396)"
    );
}

#[test]
fn arm64_without_program_gets_nothing_and_a_reason() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let out = run67(&cfg, &mut st, &arm64(Discover, MAC3));
    assert!(out.reply.is_none());
    assert!(!out.quiet);
    assert!(
        out.log.contains("no boot program for arch EFI arm64"),
        "{}",
        out.log
    );
    // With an arm64 iPXE configured it gets it.
    let cfg = DhcpConfig {
        boot_files: BootFiles {
            efi_arm64: Some("arm64-efi/snponly.efi".into()),
            ..boot_files()
        },
        ..proxy_cfg()
    };
    let w = wire(&run67(&cfg, &mut st, &arm64(Discover, MAC3)));
    assert_eq!(w.file, "arm64-efi/snponly.efi");
    assert_eq!(w.opt(43), Some(PXE43));
}

#[test]
fn non_pxe_client_gets_no_answer() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let out = run67(&cfg, &mut st, &dhclient(Discover, MAC1));
    assert!(out.reply.is_none());
    assert!(out.log.contains("not a PXE client"), "{}", out.log);
    assert!(out.log.contains("(proxy mode)"), "{}", out.log);
    assert!(!out.quiet, "one info line per non-PXE DISCOVER");
    let out = run67(&cfg, &mut st, &dhclient(Request, MAC1));
    assert!(out.reply.is_none());
    assert!(out.quiet, "other site traffic only at debug");
    // Some other vendor class.
    let m = with_opt(
        dhclient(Discover, MAC1),
        DhcpOption::ClassIdentifier(b"MSFT 5.0".to_vec()),
    );
    let out = run67(&cfg, &mut st, &m);
    assert!(out.reply.is_none());
    assert!(out.log.contains("MSFT 5.0"), "{}", out.log);
    // Not even on 4011.
    let out = run(
        &cfg,
        &mut st,
        &dhclient(Request, MAC1),
        LocalPort::Pxe,
        "10.1.0.50:68",
        T0,
    );
    assert!(out.reply.is_none());
}

#[test]
fn requests_on_port_67_are_never_answered() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    for sid in [SITE_DHCP, SERVER_IP] {
        for m in [
            with_opt(edk2(Request, MAC2), DhcpOption::ServerIdentifier(sid)),
            with_opt(ipxe(Request, MAC1, 0), DhcpOption::ServerIdentifier(sid)),
            with_opt(http_boot(Request, MAC1), DhcpOption::ServerIdentifier(sid)),
        ] {
            let m = with_opt(
                m,
                DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 0, 150)),
            );
            let out = run67(&cfg, &mut st, &m);
            assert!(out.reply.is_none(), "{}", out.log);
            assert!(
                out.log.contains("belongs to the site DHCP server"),
                "{}",
                out.log
            );
        }
    }
    for t in [Inform, Release, Decline] {
        assert!(run67(&cfg, &mut st, &edk2(t, MAC2)).reply.is_none());
    }
}

#[test]
fn port_4011_request_gets_ack_with_boot_file() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let client = Ipv4Addr::new(10, 1, 0, 150);
    let m = with_ciaddr(edk2(Request, MAC2), client);
    let out = run(&cfg, &mut st, &m, LocalPort::Pxe, "10.1.0.150:68", T0);
    let w = wire(&out);
    assert_reply_basics(&w, &m);
    assert_eq!(w.msg_type(), ACK);
    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.ciaddr, client);
    assert_eq!(w.siaddr, SERVER_IP);
    assert_eq!(w.file, "ipxe.efi");
    assert_eq!(w.opt_str(67).as_deref(), Some("ipxe.efi"));
    assert_eq!(w.opt_str(66).as_deref(), Some("10.1.0.2"));
    assert_eq!(w.opt_str(60).as_deref(), Some("PXEClient"));
    assert_eq!(w.opt(43), Some(PXE43));
    assert_eq!(w.opt(97), Some(&uuid97()[..]));
    assert_eq!(w.opt(51), None);
    assert_eq!(w.dest, sa("10.1.0.150:68"), "back to the sender");
    assert!(out.log.contains("port 4011"), "{}", out.log);

    // Sent from port 4011 with a boot item: the item is echoed in 43.
    let m = with_opt(
        m,
        DhcpOption::VendorExtensions(vec![71, 4, 0x80, 0x00, 0x00, 0x00, 255]),
    );
    let w = wire(&run(
        &cfg,
        &mut st,
        &m,
        LocalPort::Pxe,
        "10.1.0.150:4011",
        T0,
    ));
    assert_eq!(w.opt(43), Some(&[6, 1, 8, 71, 4, 0x80, 0, 0, 0, 255][..]));
    assert_eq!(w.dest, sa("10.1.0.150:4011"));

    // iPXE's proxy request gets the script.
    let m = with_ciaddr(ipxe(Request, MAC1, 0), client);
    let w = wire(&run(&cfg, &mut st, &m, LocalPort::Pxe, "10.1.0.150:68", T0));
    assert_eq!(w.file, SCRIPT_URL);
    assert_eq!(w.opt(43), None);

    // INFORM on 4011 is answered the same way.
    let m = with_ciaddr(edk2(Inform, MAC2), client);
    assert_eq!(
        wire(&run(&cfg, &mut st, &m, LocalPort::Pxe, "10.1.0.150:68", T0)).msg_type(),
        ACK
    );
}

#[test]
fn port_4011_ignores_discover_and_other_servers() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let out = run(
        &cfg,
        &mut st,
        &edk2(Discover, MAC2),
        LocalPort::Pxe,
        "10.1.0.150:68",
        T0,
    );
    assert!(out.reply.is_none());
    let m = with_opt(
        edk2(Request, MAC2),
        DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 1, 0, 9)),
    );
    let out = run(&cfg, &mut st, &m, LocalPort::Pxe, "10.1.0.150:68", T0);
    assert!(out.reply.is_none(), "{}", out.log);
    let out = run(
        &cfg,
        &mut st,
        &arm64(Request, MAC3),
        LocalPort::Pxe,
        "10.1.0.150:68",
        T0,
    );
    assert!(out.reply.is_none());
    assert!(out.log.contains("no boot program for arch EFI arm64"));
}

#[test]
fn relayed_discover_goes_back_to_the_relay() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let relay = Ipv4Addr::new(10, 2, 0, 1);
    let m = with_giaddr(edk2(Discover, MAC2), relay);
    let mut info = dhcproto::v4::relay::RelayAgentInformation::default();
    info.insert(dhcproto::v4::relay::RelayInfo::AgentCircuitId(
        b"port7".to_vec(),
    ));
    let m = with_opt(m, DhcpOption::RelayAgentInformation(info));
    let w = wire(&run(&cfg, &mut st, &m, LocalPort::Dhcp, "10.2.0.1:67", T0));
    assert_eq!(w.dest, sa("10.2.0.1:67"));
    assert_eq!(w.giaddr, relay);
    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(w.file, "ipxe.efi");
    assert_eq!(
        w.opt(82),
        Some(&b"\x01\x05port7"[..]),
        "relay agent information echoed"
    );
}

#[test]
fn measured_flow_edk2_and_ipxe() {
    // site OFFER + proxy OFFER, REQUEST/ACK with the site server (not us),
    // then REQUEST to the proxy on 4011.
    let (cfg, mut st) = (proxy_cfg(), State::default());
    for (disc, req) in [
        (edk2(Discover, MAC2), edk2(Request, MAC2)),
        (ipxe(Discover, MAC1, 7), ipxe(Request, MAC1, 7)),
    ] {
        assert_eq!(wire(&run67(&cfg, &mut st, &disc)).msg_type(), OFFER);
        let site_req = with_opt(
            with_opt(req.clone(), DhcpOption::ServerIdentifier(SITE_DHCP)),
            DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 0, 150)),
        );
        assert!(run67(&cfg, &mut st, &site_req).reply.is_none());
        let boot_req = with_ciaddr(req, Ipv4Addr::new(10, 1, 0, 150));
        let w = wire(&run(
            &cfg,
            &mut st,
            &boot_req,
            LocalPort::Pxe,
            "10.1.0.150:68",
            T0,
        ));
        assert_eq!(w.msg_type(), ACK);
        assert!(!w.file.is_empty());
    }
}

#[test]
fn proxy_never_hands_out_addresses() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let builders: Vec<fn(dhcproto::v4::MessageType, [u8; 6]) -> dhcproto::v4::Message> = vec![
        edk2,
        http_boot,
        arm64,
        dhclient,
        |t, m| ipxe(t, m, 0),
        |t, m| ipxe(t, m, 7),
    ];
    for b in builders {
        for t in [Discover, Request, Inform, Release, Decline] {
            for port in [LocalPort::Dhcp, LocalPort::Pxe] {
                let m = with_opt(
                    b(t, MAC1),
                    DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 0, 7)),
                );
                let out = run(&cfg, &mut st, &m, port, "10.1.0.7:68", T0);
                if out.reply.is_some() {
                    let w = wire(&out);
                    assert_eq!(w.yiaddr, Ipv4Addr::UNSPECIFIED, "{}", out.log);
                    assert_eq!(w.opt(51), None);
                    assert_eq!(w.opt(1), None);
                    assert!(
                        w.msg_type() == OFFER && port == LocalPort::Dhcp
                            || w.msg_type() == ACK && port == LocalPort::Pxe
                    );
                }
            }
        }
    }
    assert!(st.leases().is_empty());
}

#[test]
fn off_mode_answers_nothing() {
    let cfg = DhcpConfig {
        mode: crate::dhcp::DhcpMode::Off,
        ..proxy_cfg()
    };
    let out = run67(&cfg, &mut State::default(), &edk2(Discover, MAC2));
    assert!(out.reply.is_none());
}

#[test]
fn log_lines() {
    let (cfg, mut st) = (proxy_cfg(), State::default());
    let lines: Vec<String> = [
        run67(&cfg, &mut st, &ipxe(Discover, MAC1, 0)),
        run67(&cfg, &mut st, &edk2(Discover, MAC2)),
        run67(&cfg, &mut st, &http_boot(Discover, MAC3)),
        run67(&cfg, &mut st, &arm64(Discover, MAC3)),
        run67(&cfg, &mut st, &dhclient(Discover, MAC1)),
        run67(
            &cfg,
            &mut st,
            &with_opt(edk2(Request, MAC2), DhcpOption::ServerIdentifier(SITE_DHCP)),
        ),
        run(
            &cfg,
            &mut st,
            &with_ciaddr(edk2(Request, MAC2), Ipv4Addr::new(10, 1, 0, 150)),
            LocalPort::Pxe,
            "10.1.0.150:68",
            T0,
        ),
        crate::dhcp::process(
            &cfg,
            &mut st,
            &crate::dhcp::Inbound {
                data: b"junk",
                src: sa("10.1.0.9:68"),
                port: LocalPort::Dhcp,
                now: at(T0),
            },
        ),
    ]
    .iter()
    .map(|o| o.log.clone())
    .collect();
    for l in &lines {
        println!("{l}");
    }
    assert_eq!(
        lines[0],
        "52:54:00:12:34:01 xid=0x1b2c3d00 DISCOVER port 67 arch=BIOS x86 vendor=PXEClient iPXE: \
         proxy OFFER url http://10.1.0.2:8080/boot.ipxe to 255.255.255.255:68 (iPXE gets its boot script)"
    );
    assert_eq!(
        lines[1],
        "52:54:00:12:34:02 xid=0x0ed20007 DISCOVER port 67 arch=EFI x86-64 vendor=PXEClient firmware: \
         proxy OFFER tftp file ipxe.efi to 255.255.255.255:68 (boot program for EFI x86-64)"
    );
    assert_eq!(
        lines[3],
        "52:54:00:12:34:03 xid=0x0ed2000b DISCOVER port 67 arch=EFI arm64 vendor=PXEClient firmware: \
         no answer: no boot program for arch EFI arm64"
    );
    assert_eq!(
        lines[4],
        "52:54:00:12:34:01 xid=0xdc000001 DISCOVER port 67 arch=- vendor=none non-PXE: \
         no answer: not a PXE client (option 60 missing), ignored (proxy mode)"
    );
    assert_eq!(
        lines[7],
        "4 bytes from 10.1.0.9:68: truncated packet: 4 bytes, a DHCP packet has at least 240"
    );
}

#[test]
fn pxelinux_machines_get_lpxelinux_with_options_209_and_210() {
    use crate::dhcp::{arch::PxelinuxBoot, MacAddr};
    let only_mac3 = PxelinuxBoot {
        file: "lpxelinux.0".into(),
        path_prefix: "http://10.0.0.1/pxelinux/".into(),
        all: false,
        macs: [MacAddr(MAC3)].into_iter().collect(),
    };
    let cfg = DhcpConfig {
        boot_files: BootFiles {
            pxelinux: Some(only_mac3),
            ..boot_files()
        },
        ..proxy_cfg()
    }
    .finalize()
    .unwrap();
    let mut st = State::default();
    let bios = |mac| firmware(Discover, mac, 0, "PXEClient:Arch:00000:UNDI:002001");
    let out = run67(&cfg, &mut st, &bios(MAC3));
    let w = wire(&out);
    assert_eq!(w.file, "lpxelinux.0");
    assert_eq!(
        w.opt_str(209).as_deref(),
        Some("pxelinux.cfg/01-52-54-00-12-34-03")
    );
    assert_eq!(w.opt_str(210).as_deref(), Some("http://10.0.0.1/pxelinux/"));
    assert_eq!(
        w.opt(66),
        Some(SERVER_IP.to_string().as_bytes()),
        "lpxelinux.0 itself comes over TFTP"
    );
    assert!(out.log.contains("PXELINUX"), "{}", out.log);
    // Another BIOS machine keeps iPXE; UEFI and iPXE clients are never given PXELINUX.
    let w = wire(&run67(&cfg, &mut st, &bios(MAC2)));
    assert_eq!((w.file.as_str(), w.opt(209)), ("undionly.kpxe", None));
    assert_eq!(
        wire(&run67(&cfg, &mut st, &edk2(Discover, MAC3))).file,
        "ipxe.efi"
    );
    assert_eq!(
        wire(&run67(&cfg, &mut st, &ipxe(Discover, MAC3, 0))).file,
        SCRIPT_URL
    );
}

#[test]
fn grub_machines_get_shim_from_firmware_and_ipxe_keeps_its_script() {
    use crate::dhcp::{
        arch::{GrubBoot, MachineSet},
        MacAddr,
    };
    let grub = GrubBoot {
        efi_x64: "shimx64.efi".into(),
        efi_arm64: Some("shimaa64.efi".into()),
        machines: MachineSet::All {
            except: [MacAddr(MAC2)].into_iter().collect(),
        },
    };
    let cfg = DhcpConfig {
        boot_files: BootFiles {
            grub: Some(grub),
            ..boot_files()
        },
        ..proxy_cfg()
    }
    .finalize()
    .unwrap();
    let mut st = State::default();
    let out = run67(&cfg, &mut st, &edk2(Discover, MAC3));
    let w = wire(&out);
    assert_eq!(w.file, "shimx64.efi");
    assert_eq!(w.opt(66), Some(SERVER_IP.to_string().as_bytes()));
    assert!(
        out.log.contains("proxy OFFER tftp file shimx64.efi"),
        "{}",
        out.log
    );
    assert_eq!(
        wire(&run67(&cfg, &mut st, &arm64(Discover, MAC3))).file,
        "shimaa64.efi"
    );
    // The boot-server request on 4011 gets the same answer.
    let out = run(
        &cfg,
        &mut st,
        &with_ciaddr(edk2(Request, MAC3), "10.0.0.57".parse().unwrap()),
        LocalPort::Pxe,
        "10.0.0.57:68",
        T0,
    );
    assert_eq!(wire(&out).file, "shimx64.efi");
    // The excepted machine keeps iPXE; BIOS firmware and iPXE are never given shim.
    assert_eq!(
        wire(&run67(&cfg, &mut st, &edk2(Discover, MAC2))).file,
        "ipxe.efi"
    );
    let bios = firmware(Discover, MAC3, 0, "PXEClient:Arch:00000:UNDI:002001");
    assert_eq!(wire(&run67(&cfg, &mut st, &bios)).file, "undionly.kpxe");
    assert_eq!(
        wire(&run67(&cfg, &mut st, &ipxe(Discover, MAC3, 7))).file,
        SCRIPT_URL
    );
}
