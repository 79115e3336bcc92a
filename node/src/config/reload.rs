//! What a config reload (SIGHUP) may change in a running node.
//!
//! Pure: the running config and the newly read one in, the config to run next and a per-field
//! account out. What the serving handlers read per request changes live (the boot policy),
//! and so do the fleet's peers, members, upload limit and fetch policy (the fleet applies
//! them to its peer table, its access list, its pacer and its owner task); everything bound or opened at start (sockets, the
//! store, the fleet endpoint, the DHCP answers) keeps its old value until a restart, and the
//! account says so field by field.

use std::fmt::Debug;

use super::Config;

/// The outcome of comparing the running config with the one just read.
#[derive(Debug, Clone)]
pub struct Reload {
    /// The config to run from now on: the old one with the live fields taken from the new.
    pub next: Config,
    /// Dotted fields that changed and apply now.
    pub applied: Vec<String>,
    /// Dotted fields that changed but keep their old value until the node restarts.
    pub needs_restart: Vec<String>,
}

impl Reload {
    pub fn changed_nothing(&self) -> bool {
        self.applied.is_empty() && self.needs_restart.is_empty()
    }
}

/// Compares by the debug form, for types of other modules (DHCP pool, keys, fleet settings)
/// that have no `PartialEq`: equality of what was parsed is all a reload needs.
fn differs<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// Decides which changed fields of `wanted` apply to a node running `running`.
pub fn plan(running: &Config, wanted: &Config) -> Reload {
    let mut next = running.clone();
    let mut applied = Vec::new();
    let mut needs_restart = Vec::new();

    // Boot choices the handlers read per request: live.
    if running.boot.default_image != wanted.boot.default_image {
        next.boot.default_image = wanted.boot.default_image.clone();
        applied.push("boot.default_image".to_string());
    }
    // Which policy rules apply here: read per request.
    if running.node.site != wanted.node.site {
        next.node.site = wanted.node.site.clone();
        applied.push("node.site".to_string());
    }
    if running.boot.menu_timeout_secs != wanted.boot.menu_timeout_secs {
        next.boot.menu_timeout_secs = wanted.boot.menu_timeout_secs;
        applied.push("boot.menu_timeout_secs".to_string());
    }

    // A machine's image is read per request; its loader also decides the DHCP answer (which
    // first stage its firmware is sent), built at start, so a loader change waits.
    let macs: std::collections::BTreeSet<_> = running
        .machines
        .keys()
        .chain(wanted.machines.keys())
        .collect();
    for mac in macs {
        let (old, new) = (running.machines.get(mac), wanted.machines.get(mac));
        if old == new {
            continue;
        }
        let field = format!("machines.\"{mac}\"");
        if old.and_then(|m| m.loader()) != new.and_then(|m| m.loader()) {
            needs_restart.push(format!("{field}.loader"));
            continue;
        }
        match new {
            Some(m) => next.machines.insert(*mac, m.clone()),
            None => next.machines.remove(mac),
        };
        applied.push(field);
    }

    if let (Some(next), Some(w)) = (next.fleet.as_mut(), wanted.fleet.as_ref()) {
        if differs(&next.peers, &w.peers) {
            next.peers.clone_from(&w.peers);
            applied.push("fleet.peers".to_string());
        }
        if differs(&next.members, &w.members) {
            next.members.clone_from(&w.members);
            applied.push("fleet.members".to_string());
        }
        if next.upload_limit != w.upload_limit {
            next.upload_limit = w.upload_limit;
            applied.push("fleet.upload_limit".to_string());
        }
        if differs(&next.fetch, &w.fetch) {
            next.fetch.clone_from(&w.fetch);
            applied.push("fleet.fetch".to_string());
        }
    }

    needs_restart.extend(
        fixed_fields(running, wanted)
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(field, _)| field.to_string()),
    );
    Reload {
        next,
        applied,
        needs_restart,
    }
}

/// Every field bound, opened or sent in DHCP answers at start, and whether it changed.
/// The sections are taken apart without `..`: a new config field does not compile here until
/// someone decides whether it can change live.
fn fixed_fields(running: &Config, wanted: &Config) -> Vec<(&'static str, bool)> {
    let Config {
        data_dir,
        trusted_publishers,
        store,
        dhcp,
        tftp,
        http,
        boot,
        metrics,
        node: _,
        machines: _,
        fleet,
    } = running;
    let super::StoreConfig { keep_versions } = store;
    let super::DhcpSection {
        mode,
        interface,
        server_ip,
        pool,
    } = dhcp;
    let super::TftpSection {
        enabled,
        listen: tftp_listen,
        max_transfers,
        max_transfers_per_client,
        max_timeout_option_secs,
    } = tftp;
    let super::HttpSection {
        listen: http_listen,
        base_url,
        max_connections,
        max_connections_per_client,
        header_timeout_secs,
        idle_timeout_secs,
    } = http;
    let super::MetricsSection {
        listen: metrics_listen,
    } = metrics;
    let super::BootSection {
        first_stage,
        first_stage_dir,
        bios,
        efi_x64,
        efi_ia32,
        efi_arm64,
        bios_loader,
        efi_loader,
        grub,
        pxelinux,
        default_image: _,
        menu_timeout_secs: _,
    } = boot;
    let (w, wb) = (wanted, &wanted.boot);
    let mut fields = vec![
        ("data_dir", *data_dir != w.data_dir),
        (
            "trusted_publishers",
            differs(trusted_publishers, &w.trusted_publishers),
        ),
        (
            "store.keep_versions",
            *keep_versions != w.store.keep_versions,
        ),
        ("dhcp.mode", *mode != w.dhcp.mode),
        ("dhcp.interface", *interface != w.dhcp.interface),
        ("dhcp.server_ip", *server_ip != w.dhcp.server_ip),
        ("dhcp.pool", differs(pool, &w.dhcp.pool)),
        ("tftp.enabled", *enabled != w.tftp.enabled),
        ("tftp.listen", *tftp_listen != w.tftp.listen),
        ("tftp.max_transfers", *max_transfers != w.tftp.max_transfers),
        (
            "tftp.max_transfers_per_client",
            *max_transfers_per_client != w.tftp.max_transfers_per_client,
        ),
        (
            "tftp.max_timeout_option_secs",
            *max_timeout_option_secs != w.tftp.max_timeout_option_secs,
        ),
        ("http.listen", *http_listen != w.http.listen),
        ("http.base_url", *base_url != w.http.base_url),
        (
            "http.max_connections",
            *max_connections != w.http.max_connections,
        ),
        (
            "http.max_connections_per_client",
            *max_connections_per_client != w.http.max_connections_per_client,
        ),
        (
            "http.header_timeout_secs",
            *header_timeout_secs != w.http.header_timeout_secs,
        ),
        (
            "http.idle_timeout_secs",
            *idle_timeout_secs != w.http.idle_timeout_secs,
        ),
        ("metrics.listen", *metrics_listen != w.metrics.listen),
        ("boot.first_stage", *first_stage != wb.first_stage),
        (
            "boot.first_stage_dir",
            *first_stage_dir != wb.first_stage_dir,
        ),
        ("boot.bios", *bios != wb.bios),
        ("boot.efi_x64", *efi_x64 != wb.efi_x64),
        ("boot.efi_ia32", *efi_ia32 != wb.efi_ia32),
        ("boot.efi_arm64", *efi_arm64 != wb.efi_arm64),
        ("boot.bios_loader", *bios_loader != wb.bios_loader),
        ("boot.efi_loader", *efi_loader != wb.efi_loader),
        ("boot.grub", differs(grub, &wb.grub)),
        ("boot.pxelinux", *pxelinux != wb.pxelinux),
    ];
    fields.extend(fleet_fields(fleet.as_ref(), w.fleet.as_ref()));
    fields
}

/// `[fleet]` per field when both sides have one (the endpoint and its settings are made at
/// start); adding or removing the section is one change. The fleet's own module owns this
/// type, so a field not listed here is still caught by the whole-section comparison.
fn fleet_fields(
    running: Option<&crate::fleet::FleetSection>,
    wanted: Option<&crate::fleet::FleetSection>,
) -> Vec<(&'static str, bool)> {
    let (Some(r), Some(w)) = (running, wanted) else {
        return vec![("fleet", running.is_some() != wanted.is_some())];
    };
    // Live (see `plan`), but part of "did anything in the section change".
    let live = differs(&r.peers, &w.peers)
        || differs(&r.members, &w.members)
        || r.upload_limit != w.upload_limit
        || differs(&r.fetch, &w.fetch);
    let mut fields = vec![
        ("fleet.listen", r.listen != w.listen),
        ("fleet.upload_slots", r.upload_slots != w.upload_slots),
        ("fleet.relay", r.relay != w.relay),
        (
            "fleet.stall_timeout_secs",
            r.stall_timeout_secs != w.stall_timeout_secs,
        ),
        ("fleet.congestion", differs(&r.congestion, &w.congestion)),
        ("fleet.window", differs(&r.window, &w.window)),
        ("fleet.streams", r.streams != w.streams),
    ];
    let listed = live || fields.iter().any(|(_, changed)| *changed);
    fields.push(("fleet", !listed && differs(r, w)));
    fields
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = "data_dir = \"/d\"\n[dhcp]\nmode = \"off\"\nserver_ip = \"127.0.0.1\"\n";
    const ID1: &str = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6";
    const P1: &str =
        "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6@10.1.0.1:7311";
    const P2: &str =
        "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6@10.1.0.2:7311";

    fn config(extra: &str) -> Config {
        Config::parse(&format!("{BASE}{extra}"), Path::new("/n.toml")).unwrap()
    }

    #[test]
    fn which_changes_apply_live_and_which_wait_for_a_restart() {
        let a = "\"52:54:00:00:00:01\"";
        let b = "\"52:54:00:00:00:02\"";
        // (running extra, wanted extra, applied, needs restart)
        let cases: &[(&str, String, &[&str], &[&str])] = &[
            ("", String::new(), &[], &[]),
            (
                "",
                "[boot]\ndefault_image = \"debian\"\nmenu_timeout_secs = 3\n".into(),
                &["boot.default_image", "boot.menu_timeout_secs"],
                &[],
            ),
            (
                "[machines]\n\"52:54:00:00:00:01\" = \"a\"\n",
                format!("[machines]\n{a} = \"b\"\n{b} = \"a\"\n"),
                &[
                    "machines.\"52:54:00:00:00:01\"",
                    "machines.\"52:54:00:00:00:02\"",
                ],
                &[],
            ),
            (
                "[machines]\n\"52:54:00:00:00:01\" = \"a\"\n",
                String::new(),
                &["machines.\"52:54:00:00:00:01\""],
                &[],
            ),
            (
                "[machines]\n\"52:54:00:00:00:01\" = \"a\"\n",
                format!("[machines]\n{a} = {{ image = \"b\", loader = \"pxelinux\" }}\n"),
                &[],
                &["machines.\"52:54:00:00:00:01\".loader"],
            ),
            (
                "",
                "[http]\nlisten = \"127.0.0.1:9090\"\n".into(),
                &[],
                &["http.listen"],
            ),
            (
                "[fleet]\nupload_slots = 1\n",
                "[fleet]\nupload_slots = 2\nfetch = [\"debian-*\"]\n".into(),
                &["fleet.fetch"],
                &["fleet.upload_slots"],
            ),
            ("", "[fleet]\n".into(), &[], &["fleet"]),
            (
                &format!("[fleet]\npeers = [\"{P1}\"]\n"),
                format!("[fleet]\npeers = [\"{P2}\"]\nmembers = [\"{ID1}\"]\nupload_limit = \"5 MB/s\"\n"),
                &["fleet.peers", "fleet.members", "fleet.upload_limit"],
                &[],
            ),
            (
                "[fleet]\nupload_limit = \"5 MB/s\"\n",
                "[fleet]\nlisten = \"0.0.0.0:7400\"\n".into(),
                &["fleet.upload_limit"],
                &["fleet.listen"],
            ),
            (
                "",
                "[boot]\nefi_loader = \"grub\"\nbios = \"x.kpxe\"\n[tftp]\nenabled = false\n"
                    .into(),
                &[],
                &["tftp.enabled", "boot.bios", "boot.efi_loader"],
            ),
        ];
        for (running, wanted, applied, restart) in cases {
            let r = plan(&config(running), &config(wanted));
            assert_eq!(r.applied, *applied, "applied, {running:?} -> {wanted:?}");
            assert_eq!(
                r.needs_restart, *restart,
                "restart, {running:?} -> {wanted:?}"
            );
            assert_eq!(
                r.changed_nothing(),
                applied.is_empty() && restart.is_empty()
            );
        }
    }

    #[test]
    fn the_next_config_takes_live_fields_and_keeps_the_rest() {
        let running =
            config("[machines]\n\"52:54:00:00:00:01\" = \"a\"\n\"52:54:00:00:00:02\" = \"a\"\n");
        let wanted = config(
            "[http]\nlisten = \"127.0.0.1:9090\"\n[boot]\ndefault_image = \"d\"\n[machines]\n\"52:54:00:00:00:01\" = \"b\"\n\"52:54:00:00:00:02\" = { image = \"b\", loader = \"grub\" }\n",
        );
        let next = plan(&running, &wanted).next;
        let image = |mac: &str| next.machines[&mac.parse().unwrap()].image().to_string();
        assert_eq!(image("52:54:00:00:00:01"), "b");
        assert_eq!(
            image("52:54:00:00:00:02"),
            "a",
            "a loader change waits, image too"
        );
        assert_eq!(
            next.boot.default_image.as_ref().map(|i| i.to_string()),
            Some("d".into())
        );
        assert_eq!(next.http.listen, running.http.listen);
    }
}
