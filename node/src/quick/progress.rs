//! One line per client and boot stage for `netboot quick`'s terminal (stdout), read from the
//! node's client record: what happened to each machine, without reading the node's log.

use std::collections::{BTreeSet, HashMap};

use crate::clients::{Boot, Stage};

/// The stages already printed, per boot.
#[derive(Debug, Default)]
pub struct Progress {
    printed: HashMap<u64, BTreeSet<Stage>>,
}

impl Progress {
    /// Lines for the stages reached since the last call. `boots` is the record's recent
    /// boots, newest first; lines come oldest boot first, each boot's stages in order.
    pub fn update(&mut self, boots: &[Boot]) -> Vec<String> {
        let mut lines = Vec::new();
        for boot in boots.iter().rev() {
            let printed = self.printed.entry(boot.id).or_default();
            for (&stage, &at_ms) in &boot.stages {
                // A proxy never answers the REQUEST that follows its offer; that is only
                // news when the boot got no further.
                if stage == Stage::DhcpIgnored && boot.furthest() != Some(Stage::DhcpIgnored) {
                    continue;
                }
                if printed.insert(stage) {
                    lines.push(line(boot, stage, at_ms));
                }
            }
        }
        // Boots that left the record are not coming back.
        self.printed
            .retain(|id, _| boots.iter().any(|b| b.id == *id));
        lines
    }
}

fn line(boot: &Boot, stage: Stage, at_ms: u64) -> String {
    let who = match (&boot.mac, &boot.ip) {
        (Some(mac), Some(ip)) => format!("{mac} ({ip})"),
        (Some(mac), None) => mac.to_string(),
        (None, Some(ip)) => format!("client at {ip}"),
        (None, None) => "a client".to_string(),
    };
    let arch = boot
        .arch
        .as_deref()
        .map(|a| format!(" [{a}]"))
        .unwrap_or_default();
    let image = boot
        .image
        .as_ref()
        .map(|i| format!("{} v{}", i.name, i.version))
        .unwrap_or_else(|| "the image".into());
    let what = match stage {
        Stage::DhcpIgnored => format!(
            "DHCP request not answered: {}",
            boot.ignored.as_deref().unwrap_or("see the log")
        ),
        Stage::DhcpAnswered => "DHCP: told where to boot from".to_string(),
        Stage::FirstStage => "got its first-stage program".to_string(),
        Stage::Config => format!("got its boot script ({image})"),
        Stage::Kernel => format!("got the kernel of {image}"),
        Stage::Initrd => format!("got an initrd of {image}"),
    };
    let after = at_ms.saturating_sub(boot.started_ms);
    format!(
        "{who}{arch} +{}.{}s: {what}",
        after / 1000,
        (after % 1000) / 100
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clients::ImageRef;

    fn boot(id: u64, stages: &[(Stage, u64)]) -> Boot {
        Boot {
            id,
            mac: Some("52:54:00:12:34:56".parse().unwrap()),
            ip: Some("10.0.0.50".parse().unwrap()),
            arch: Some("BIOS x86".into()),
            started_ms: 1_000,
            stages: stages.iter().copied().collect::<BTreeMap<_, _>>(),
            image: Some(ImageRef {
                name: "quick".into(),
                version: 1,
            }),
            ignored: Some("REQUEST on port 67 belongs to the site DHCP server".into()),
            last_file: None,
        }
    }

    #[test]
    fn each_stage_is_printed_once_as_it_is_reached() {
        let mut p = Progress::default();
        let lines = p.update(&[boot(
            1,
            &[(Stage::DhcpAnswered, 1_000), (Stage::DhcpIgnored, 1_100)],
        )]);
        assert_eq!(
            lines,
            ["52:54:00:12:34:56 (10.0.0.50) [BIOS x86] +0.0s: DHCP: told where to boot from"],
            "the proxy's unanswered REQUEST is not news once the offer went out"
        );
        let lines = p.update(&[boot(
            1,
            &[
                (Stage::DhcpAnswered, 1_000),
                (Stage::DhcpIgnored, 1_100),
                (Stage::FirstStage, 1_500),
                (Stage::Config, 2_000),
                (Stage::Kernel, 2_250),
            ],
        )]);
        assert_eq!(
            lines,
            [
                "52:54:00:12:34:56 (10.0.0.50) [BIOS x86] +0.5s: got its first-stage program",
                "52:54:00:12:34:56 (10.0.0.50) [BIOS x86] +1.0s: got its boot script (quick v1)",
                "52:54:00:12:34:56 (10.0.0.50) [BIOS x86] +1.2s: got the kernel of quick v1",
            ]
        );
        assert!(p.update(&[boot(1, &[(Stage::Kernel, 2_250)])]).is_empty());
    }

    #[test]
    fn a_boot_stuck_at_an_unanswered_request_says_why_and_boots_come_oldest_first() {
        let mut p = Progress::default();
        let mut stuck = boot(7, &[(Stage::DhcpIgnored, 1_000)]);
        stuck.ignored = Some("not a PXE client".into());
        stuck.mac = None;
        let newer = boot(8, &[(Stage::DhcpAnswered, 5_000)]);
        let lines = p.update(&[newer, stuck]);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(
                "client at 10.0.0.50 [BIOS x86] +0.0s: DHCP request not answered: not a PXE client"
            ),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("+4.0s: DHCP: told where to boot from"),
            "{lines:?}"
        );
        p.update(&[]);
        assert!(
            p.printed.is_empty(),
            "boots gone from the record are forgotten"
        );
    }
}
