//! The fleet-wide machine list between real `netboot node` processes on loopback: a machine
//! that boots at site C (its boot script, kernel and initrd fetched by MAC over HTTP, as
//! `clients.rs` makes records) is listed by `netboot clients --fleet` asked at A, with C's
//! site label, its architecture and how far it got; `--site` keeps one site; a configured
//! peer that is down is listed as not answering, not left out; a node that is not a member
//! of A's fleet is refused A's list. In a chain A – B – C, A lists C's machine through B.

use std::time::Duration;

use netboot_tests::{
    content, fleet_sites::Fleet, http_code, logs_of, netboot_clients, wait_until, NodeProcess,
};

const AT_C: &str = "52:54:00:00:0c:01";

fn fleet_json(config: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let text = netboot_clients(config, &[&["--fleet", "--json"], args].concat());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn machine<'a>(view: &'a serde_json::Value, mac: &str) -> Option<&'a serde_json::Value> {
    view["machines"]
        .as_array()?
        .iter()
        .find(|m| m["mac"] == mac)
}

/// Waits until the fleet-wide list asked at the node of `config` has `AT_C`; returns it.
fn listed_at(config: &std::path::Path, what: &str, logs: &dyn Fn() -> String) -> serde_json::Value {
    let mut view = serde_json::Value::Null;
    wait_until(what, Duration::from_secs(60), logs, || {
        view = fleet_json(config, &[]);
        machine(&view, AT_C).is_some()
    });
    view
}

/// Publishes `debian` v3 at `c` (C's `[machines]` gives it to `AT_C`) and boots `AT_C` there
/// as far as its initrd: its boot script, kernel and initrd fetched over HTTP by MAC.
fn boot_debian_at(fleet: &Fleet, c: &netboot_tests::fleet_sites::Site) {
    let (k, i) = (
        fleet.file("vmlinuz", &content(31, 200_000)),
        fleet.file("initrd.img", &content(32, 100_000)),
    );
    fleet.publish_to(c, "debian", 3, &["--kernel", &k, "--initrd", &i]);
    for path in [
        format!("/boot.ipxe?mac={AT_C}&ip=127.0.0.1"),
        "/r/debian/3/vmlinuz".into(),
        "/r/debian/3/initrd.img".into(),
    ] {
        assert_eq!(http_code(&[], &c.url(&path)), "200", "{path}");
    }
}

#[test]
fn a_machine_booted_at_one_site_is_listed_at_another() {
    let fleet = Fleet::new();
    let (a, b, c) = (fleet.site("a"), fleet.site("b"), fleet.site("c"));
    // A dials B and C; B never runs.
    fleet.configure(&a, &[b.addr(), c.addr()], &[], "[node]\nsite = \"hq\"");
    fleet.configure(
        &c,
        &[a.addr()],
        &[],
        &format!("[node]\nsite = \"branch-c\"\n[machines]\n\"{AT_C}\" = \"debian\""),
    );
    let (na, nc) = (
        NodeProcess::start(&a.config, None),
        NodeProcess::start(&c.config, None),
    );
    let logs = || logs_of(&[("a", &na), ("c", &nc)]);
    boot_debian_at(&fleet, &c);

    let view = listed_at(&a.config, "A to list C's machine", &logs);
    let m = machine(&view, AT_C).unwrap();
    assert_eq!(m["site"], "branch-c", "{m}");
    assert_eq!(m["node"], c.id[..10].to_string(), "{m}");
    assert_eq!(m["image"]["name"], "debian", "{m}");
    assert_eq!(m["outcome"], "initrd", "{m}");
    assert!(m["last_boot"]["stages"]["kernel"].as_u64().is_some(), "{m}");
    let sites: Vec<&str> = view["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["site"].as_str())
        .collect();
    assert_eq!(sites, ["branch-c", "hq"], "{view}");
    let silent = view["silent"].as_array().unwrap();
    assert_eq!(silent.len(), 1, "B is down: {view}");
    assert_eq!(silent[0]["node"], b.id[..10].to_string(), "{view}");
    assert!(
        silent[0]["why"].as_str().unwrap().contains("not connected"),
        "{view}"
    );

    let only_hq = fleet_json(&a.config, &["--site", "hq"]);
    assert!(machine(&only_hq, AT_C).is_none(), "{only_hq}");
    let only_c = fleet_json(&a.config, &["--site", "branch-c"]);
    assert!(machine(&only_c, AT_C).is_some(), "{only_c}");

    let table = netboot_clients(&a.config, &["--fleet"]);
    let row = table
        .lines()
        .find(|l| l.contains(AT_C))
        .unwrap_or_else(|| panic!("no row for {AT_C}:\n{table}"));
    assert!(
        row.starts_with("branch-c") && row.contains("debian v3") && row.ends_with("initrd"),
        "{table}"
    );
    assert!(
        table.contains(&format!("({}): no answer: not connected", &b.id[..10])),
        "{table}"
    );

    // D dials A, but A does not list D among its peers or members.
    let d = fleet.site("d");
    fleet.configure(&d, &[a.addr()], &[], "[node]\nsite = \"outsider\"");
    let nd = NodeProcess::start(&d.config, None);
    let mut view = serde_json::Value::Null;
    wait_until(
        "D to be refused A's machine list",
        Duration::from_secs(60),
        &|| format!("{}\n--- d ---\n{}", logs(), nd.log_text()),
        || {
            view = fleet_json(&d.config, &[]);
            view["silent"][0]["why"]
                .as_str()
                .is_some_and(|w| w.contains("refused: not a member"))
        },
    );
    assert!(machine(&view, AT_C).is_none(), "{view}");
    assert_eq!(view["silent"][0]["node"], a.id[..10].to_string(), "{view}");
}

/// In a chain A – B – C (A does not peer with C), A's fleet-wide list still shows the machine
/// booted at C: B passes the question on to the sites behind it.
#[test]
fn a_machine_two_hops_away_is_listed_through_the_site_between() {
    let fleet = Fleet::new();
    let (a, b, c) = (fleet.site("a"), fleet.site("b"), fleet.site("c"));
    fleet.configure(&a, &[b.addr()], &[], "[node]\nsite = \"hq\"");
    fleet.configure(
        &b,
        &[a.addr(), c.addr()],
        &[],
        "[node]\nsite = \"regional\"",
    );
    fleet.configure(
        &c,
        &[b.addr()],
        &[],
        &format!("[node]\nsite = \"branch-c\"\n[machines]\n\"{AT_C}\" = \"debian\""),
    );
    let (na, nb, nc) = (
        NodeProcess::start(&a.config, None),
        NodeProcess::start(&b.config, None),
        NodeProcess::start(&c.config, None),
    );
    let logs = || logs_of(&[("a", &na), ("b", &nb), ("c", &nc)]);
    boot_debian_at(&fleet, &c);
    let view = listed_at(&a.config, "A to list C's machine through B", &logs);
    let m = machine(&view, AT_C).unwrap();
    assert_eq!(m["site"], "branch-c", "{m}");
    assert_eq!(m["node"], c.id[..10].to_string(), "{m}");
    assert_eq!(m["outcome"], "initrd", "{m}");
    let mut sites: Vec<&str> = view["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["site"].as_str())
        .collect();
    sites.sort();
    assert_eq!(
        sites,
        ["branch-c", "hq", "regional"],
        "each site once: {view}"
    );
    assert!(view["silent"].as_array().unwrap().is_empty(), "{view}");
}
