//! What a config reload (SIGHUP) may change in a running node.
//!
//! Pure: the running config and the newly read one in, the config to run next and a per-field
//! account out. Only what the serving handlers read per request changes live (the boot
//! policy); everything bound or opened at start (sockets, the store, the fleet endpoint, the
//! DHCP answers) keeps its old value until a restart, and the account says so field by field.

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

/// Compares by the debug form: the section types belong to several modules (DHCP pool,
/// fleet settings) and equality of what was parsed is all a reload needs.
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

    // Everything else is bound, opened or sent in DHCP answers at start.
    let b = (&running.boot, &wanted.boot);
    let fixed: [(&str, bool); 23] = [
        ("data_dir", differs(&running.data_dir, &wanted.data_dir)),
        (
            "trusted_publishers",
            differs(&running.trusted_publishers, &wanted.trusted_publishers),
        ),
        (
            "store.keep_versions",
            differs(&running.store, &wanted.store),
        ),
        ("dhcp.mode", running.dhcp.mode != wanted.dhcp.mode),
        (
            "dhcp.interface",
            running.dhcp.interface != wanted.dhcp.interface,
        ),
        (
            "dhcp.server_ip",
            running.dhcp.server_ip != wanted.dhcp.server_ip,
        ),
        ("dhcp.pool", differs(&running.dhcp.pool, &wanted.dhcp.pool)),
        ("tftp", differs(&running.tftp, &wanted.tftp)),
        ("http.listen", running.http.listen != wanted.http.listen),
        (
            "http.base_url",
            running.http.base_url != wanted.http.base_url,
        ),
        (
            "http (connection limits and timeouts)",
            differs(&running.http.limits(), &wanted.http.limits()),
        ),
        (
            "metrics.listen",
            running.metrics.listen != wanted.metrics.listen,
        ),
        ("boot.first_stage", b.0.first_stage != b.1.first_stage),
        (
            "boot.first_stage_dir",
            b.0.first_stage_dir != b.1.first_stage_dir,
        ),
        ("boot.bios", b.0.bios != b.1.bios),
        ("boot.efi_x64", b.0.efi_x64 != b.1.efi_x64),
        ("boot.efi_ia32", b.0.efi_ia32 != b.1.efi_ia32),
        ("boot.efi_arm64", b.0.efi_arm64 != b.1.efi_arm64),
        ("boot.bios_loader", b.0.bios_loader != b.1.bios_loader),
        ("boot.efi_loader", b.0.efi_loader != b.1.efi_loader),
        ("boot.grub", differs(&b.0.grub, &b.1.grub)),
        ("boot.pxelinux", b.0.pxelinux != b.1.pxelinux),
        ("fleet", differs(&running.fleet, &wanted.fleet)),
    ];
    needs_restart.extend(
        fixed
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = "data_dir = \"/d\"\n[dhcp]\nmode = \"off\"\nserver_ip = \"127.0.0.1\"\n";

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
                "",
                "[boot]\nefi_loader = \"grub\"\nbios = \"x.kpxe\"\n[tftp]\nenabled = false\n"
                    .into(),
                &[],
                &["tftp", "boot.bios", "boot.efi_loader"],
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
