//! Lease persistence: survives a reload, corrupt files fail loudly.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use dhcproto::v4::{DhcpOption, MessageType::*};

use super::clients::*;
use crate::dhcp::lease::{LeaseError, LeaseStore};
use crate::dhcp::{DhcpConfig, DhcpMode, DhcpServer, MacAddr, ServerError, State};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "dhcp-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cfg_with_file(path: PathBuf) -> DhcpConfig {
    let mut pool = pool();
    pool.lease_file = Some(path);
    DhcpConfig {
        mode: DhcpMode::Server(pool),
        ..server_cfg()
    }
}

#[test]
fn leases_survive_a_reload() {
    let dir = TempDir::new("reload");
    let path = dir.file("leases.json");
    let cfg = cfg_with_file(path.clone());
    let mut st = State::new(LeaseStore::open(&path).unwrap());
    assert!(st.leases().is_empty(), "missing file = no leases");

    let o = wire(&run67(&cfg, &mut st, &edk2(Discover, MAC1)));
    let r = with_opt(
        with_opt(edk2(Request, MAC1), DhcpOption::ServerIdentifier(SERVER_IP)),
        DhcpOption::RequestedIpAddress(o.yiaddr),
    );
    assert_eq!(wire(&run67(&cfg, &mut st, &r)).msg_type(), ACK);
    st.save_leases().unwrap();
    assert!(!st.leases().is_dirty());
    assert!(
        !dir.file("leases.json.tmp").exists(),
        "temporary file renamed away"
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"52:54:00:12:34:01\""), "{text}");
    assert!(text.contains("\"10.1.0.100\""), "{text}");

    // "Restart": a new state from the file.
    let mut st2 = State::new(LeaseStore::open(&path).unwrap());
    let l = st2.leases().by_mac(MacAddr(MAC1)).unwrap();
    assert_eq!((l.ip, l.expires), (Ipv4Addr::new(10, 1, 0, 100), T0 + 3600));
    // The address is still taken for others, still the client's own.
    assert_eq!(
        wire(&run67(&cfg, &mut st2, &dhclient(Discover, MAC2))).yiaddr,
        Ipv4Addr::new(10, 1, 0, 101)
    );
    assert_eq!(
        wire(&run67(&cfg, &mut st2, &edk2(Discover, MAC1))).yiaddr,
        Ipv4Addr::new(10, 1, 0, 100)
    );
    let r = with_opt(
        with_opt(
            dhclient(Request, MAC2),
            DhcpOption::ServerIdentifier(SERVER_IP),
        ),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 0, 100)),
    );
    assert_eq!(wire(&run67(&cfg, &mut st2, &r)).msg_type(), NAK);

    // Release, save, reload: the record stays, expired, so it is reusable.
    let rel = with_ciaddr(dhclient(Release, MAC1), Ipv4Addr::new(10, 1, 0, 100));
    run(
        &cfg,
        &mut st2,
        &rel,
        crate::dhcp::LocalPort::Dhcp,
        "10.1.0.100:68",
        T0 + 5,
    );
    st2.save_leases().unwrap();
    let st3 = State::new(LeaseStore::open(&path).unwrap());
    assert_eq!(st3.leases().by_mac(MacAddr(MAC1)).unwrap().expires, T0 + 5);
}

#[test]
fn snapshot_then_write_is_what_the_listener_does() {
    let dir = TempDir::new("snap");
    let path = dir.file("l.json");
    let mut s = LeaseStore::open(&path).unwrap();
    assert!(s.take_snapshot().is_none(), "nothing changed");
    s.bind(MacAddr(MAC2), Ipv4Addr::new(10, 1, 0, 103), T0);
    let (p, bytes) = s.take_snapshot().unwrap();
    assert_eq!(p, path);
    assert!(s.take_snapshot().is_none());
    crate::dhcp::lease::write_atomic(&p, &bytes).unwrap();
    let again = LeaseStore::open(&path).unwrap();
    assert_eq!(
        again.by_ip(Ipv4Addr::new(10, 1, 0, 103)).unwrap().mac,
        MacAddr(MAC2)
    );
    // In-memory stores have nothing to write.
    let mut mem = LeaseStore::in_memory();
    mem.bind(MacAddr(MAC2), Ipv4Addr::new(10, 1, 0, 103), T0);
    assert!(mem.take_snapshot().is_none());
}

#[test]
fn one_lease_per_mac_and_per_address() {
    let mut s = LeaseStore::in_memory();
    let (a, b) = (Ipv4Addr::new(10, 1, 0, 100), Ipv4Addr::new(10, 1, 0, 101));
    s.bind(MacAddr(MAC1), a, T0);
    s.bind(MacAddr(MAC1), b, T0);
    assert_eq!(s.len(), 1);
    assert_eq!(s.by_mac(MacAddr(MAC1)).unwrap().ip, b);
    s.bind(MacAddr(MAC2), b, T0);
    assert_eq!(s.len(), 1);
    assert!(s.by_mac(MacAddr(MAC1)).is_none());
}

fn corrupt_message(dir: &TempDir, name: &str, content: &str) -> String {
    let path = dir.file(name);
    fs::write(&path, content).unwrap();
    match LeaseStore::open(&path) {
        Err(e @ LeaseError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(path.to_str().unwrap()),
                "names the file: {msg}"
            );
            msg
        }
        other => panic!("expected a corrupt-file error for {content:?}, got {other:?}"),
    }
}

#[test]
fn corrupt_lease_files_are_clear_errors() {
    let dir = TempDir::new("corrupt");
    let good = r#"{"version":1,"leases":[{"mac":"52:54:00:12:34:01","ip":"10.1.0.100","expires":1700003600}]}"#;
    fs::write(dir.file("good.json"), good).unwrap();
    assert_eq!(LeaseStore::open(dir.file("good.json")).unwrap().len(), 1);

    let m = corrupt_message(
        &dir,
        "garbage.json",
        "{\"version\":1,\n\"leases\":[\n  {\"mac\": 12\u{0}",
    );
    assert!(m.contains("line 3"), "{m}");
    let m = corrupt_message(
        &dir,
        "badmac.json",
        "{\"version\":1,\"leases\":[\n{\"mac\":\"52:54:00:12:34:01\",\"ip\":\"10.1.0.100\",\"expires\":1},\n{\"mac\":\"52:54:zz:12:34:01\",\"ip\":\"10.1.0.101\",\"expires\":1}]}",
    );
    assert!(
        m.contains("invalid MAC address") && m.contains("line 3"),
        "{m}"
    );
    let m = corrupt_message(
        &dir,
        "badip.json",
        r#"{"version":1,"leases":[{"mac":"52:54:00:12:34:01","ip":"10.1.0.300","expires":1}]}"#,
    );
    assert!(m.contains("IPv4 address") && m.contains("column"), "{m}");
    let m = corrupt_message(
        &dir,
        "field.json",
        r#"{"version":1,"leases":[{"mac":"52:54:00:12:34:01","ip":"10.1.0.1","expiry":1}]}"#,
    );
    assert!(m.contains("expiry"), "{m}");
    let m = corrupt_message(
        &dir,
        "dupip.json",
        r#"{"version":1,"leases":[{"mac":"52:54:00:12:34:01","ip":"10.1.0.1","expires":1},{"mac":"52:54:00:12:34:02","ip":"10.1.0.1","expires":1}]}"#,
    );
    assert!(
        m.contains("leases[0] and leases[1] both hold 10.1.0.1"),
        "{m}"
    );
    let m = corrupt_message(
        &dir,
        "dupmac.json",
        r#"{"version":1,"leases":[{"mac":"52:54:00:12:34:01","ip":"10.1.0.1","expires":1},{"mac":"52:54:00:12:34:01","ip":"10.1.0.2","expires":1}]}"#,
    );
    assert!(m.contains("are both for 52:54:00:12:34:01"), "{m}");
    let m = corrupt_message(&dir, "version.json", r#"{"version":7,"leases":[]}"#);
    assert!(m.contains("version 7"), "{m}");
    let m = corrupt_message(&dir, "empty.json", "");
    assert!(m.contains("empty"), "{m}");
    // Cut short, as a non-atomic writer would leave it.
    let m = corrupt_message(&dir, "cut.json", &good[..good.len() - 20]);
    assert!(m.contains("EOF"), "{m}");
}

#[test]
fn unreadable_lease_path_is_an_error_not_an_empty_table() {
    let dir = TempDir::new("unreadable");
    // A directory where the file should be.
    fs::create_dir_all(dir.file("leases.json")).unwrap();
    let e = LeaseStore::open(dir.file("leases.json")).unwrap_err();
    assert!(matches!(e, LeaseError::Read { .. }), "{e}");
    assert!(e.to_string().contains("leases.json"), "{e}");
}

#[tokio::test]
async fn server_refuses_to_start_on_a_corrupt_lease_file() {
    let dir = TempDir::new("bind");
    let path = dir.file("leases.json");
    fs::write(&path, "not json").unwrap();
    let mut cfg = cfg_with_file(path.clone());
    cfg.listen_ip = Ipv4Addr::LOCALHOST;
    cfg.dhcp_port = 0;
    cfg.pxe_port = 0;
    match DhcpServer::bind(cfg).await {
        Err(ServerError::Lease(e)) => {
            assert!(e.to_string().contains(path.to_str().unwrap()), "{e}")
        }
        other => panic!("expected a lease error, got {other:?}"),
    }
}
