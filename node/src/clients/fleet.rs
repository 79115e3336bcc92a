//! The fleet-wide machine list (`netboot clients --fleet`, `GET /fleet/clients.json`): every
//! node answers for its own site with a [`SiteClients`] (over the fleet control protocol),
//! and the node that was asked merges the answers with its own, listing the peers that gave
//! none as [`Silent`] rather than leaving them out. Pure; the asking and answering are
//! `fleet::inventory`'s.

use serde::{Deserialize, Serialize};

use super::{text::how_far, Machine};

/// One node's machines, and which site they are at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteClients {
    /// The node's site label (`[node] site`, else its host name).
    pub site: String,
    /// The node's fleet id, short form.
    pub node: String,
    /// Unix milliseconds when the node answered, by its own clock.
    pub generated_ms: u64,
    /// Most recently seen first.
    pub machines: Vec<Machine>,
    /// Least recently seen machines left out to keep the answer within the message limit.
    #[serde(default)]
    pub left_out: usize,
}

impl SiteClients {
    /// The answer as JSON of at most `max` bytes: whole if it fits, otherwise without the
    /// least recently seen machines (the list halved until it fits; an empty list always
    /// does for any sane `max`).
    pub fn encode_bounded(mut self, max: usize) -> Vec<u8> {
        loop {
            let json = serde_json::to_vec(&self).unwrap_or_default();
            if json.len() <= max || self.machines.is_empty() {
                return json;
            }
            let keep = self.machines.len() / 2;
            self.left_out += self.machines.len() - keep;
            self.machines.truncate(keep);
        }
    }
}

/// A peer that was asked for its machines and did not give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silent {
    /// The peer as this node knows it: its configured address, or its id's short form.
    pub peer: String,
    /// Its fleet id, short form.
    pub node: String,
    /// Why there is no answer: not connected, no answer in time, refused, unreadable.
    pub why: String,
}

/// What asking one node gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Machines(SiteClients),
    Silent(Silent),
}

/// A site that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSummary {
    pub site: String,
    pub node: String,
    pub machines: usize,
    pub left_out: usize,
}

/// One machine of the fleet-wide list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetMachine {
    pub site: String,
    pub node: String,
    /// How long before its site answered it was last seen: each site's clock is its own, so
    /// ages are counted on the clock that recorded them.
    pub seen_ago_ms: u64,
    /// How far its last boot got, or why it was not answered, and its one-shot boot
    /// (`netboot clients`' HOW FAR).
    pub outcome: String,
    #[serde(flatten)]
    pub machine: Machine,
}

/// `GET /fleet/clients.json`: the machines of every site that answered, and who did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetClientsView {
    /// Unix milliseconds when the asked node merged the answers.
    pub generated_ms: u64,
    /// The sites that answered, by site label.
    pub sites: Vec<SiteSummary>,
    /// Peers that gave no answer, and why.
    pub silent: Vec<Silent>,
    /// Every answering site's machines, most recently seen first.
    pub machines: Vec<FleetMachine>,
}

/// Merges the answers (the asked node's own among them) into one list.
pub fn merge(now_ms: u64, answers: Vec<Answer>) -> FleetClientsView {
    let (mut sites, mut silent, mut machines) = (Vec::new(), Vec::new(), Vec::new());
    for answer in answers {
        match answer {
            Answer::Silent(s) => silent.push(s),
            Answer::Machines(site) => {
                sites.push(SiteSummary {
                    site: site.site.clone(),
                    node: site.node.clone(),
                    machines: site.machines.len(),
                    left_out: site.left_out,
                });
                machines.extend(site.machines.into_iter().map(|m| FleetMachine {
                    site: site.site.clone(),
                    node: site.node.clone(),
                    seen_ago_ms: site.generated_ms.saturating_sub(m.last_seen_ms),
                    outcome: how_far(&m, site.generated_ms),
                    machine: m,
                }));
            }
        }
    }
    sites.sort_by(|a, b| (&a.site, &a.node).cmp(&(&b.site, &b.node)));
    silent.sort_by(|a, b| a.peer.cmp(&b.peer));
    machines.sort_by(|a, b| {
        (a.seen_ago_ms, &a.site, a.machine.mac.0).cmp(&(b.seen_ago_ms, &b.site, b.machine.mac.0))
    });
    FleetClientsView {
        generated_ms: now_ms,
        sites,
        silent,
        machines,
    }
}

impl FleetClientsView {
    /// Keeps only the machines (and the answer) of site `site`. Silent peers stay listed:
    /// which site they are is what they did not say.
    pub fn only_site(&mut self, site: &str) {
        self.machines.retain(|m| m.site == site);
        self.sites.retain(|s| s.site == site);
    }

    /// The site labels that answered, for "no such site" messages.
    pub fn site_labels(&self) -> Vec<&str> {
        self.sites.iter().map(|s| s.site.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::clients::{
        text, Clients, DhcpAnswer, DhcpSeen, Fetch, ImageRef, Limits, Stage, Via,
    };
    use crate::dhcp::ClientArch;

    /// A site whose clock reads `clock_ms` when it answers, with one machine per MAC seen
    /// `ago_ms` before that: the first booted to its initrd, the others never answered.
    fn site(label: &str, clock_ms: u64, macs: &[(&str, u64)]) -> SiteClients {
        let mut c = Clients::new(Limits::default());
        for (i, (mac, ago_ms)) in macs.iter().enumerate() {
            let ip = Ipv4Addr::new(10, 0, 0, i as u8 + 1);
            let boots = i == 0;
            c.dhcp(
                DhcpSeen {
                    mac: mac.parse().unwrap(),
                    mode: "proxy",
                    arch: Some(ClientArch::EfiX64),
                    vendor: "PXEClient".into(),
                    boot_client: boots,
                    ipxe: false,
                    ip: Some(ip),
                    answer: if boots {
                        DhcpAnswer::Boot
                    } else {
                        DhcpAnswer::Ignored {
                            reason: "not a PXE client".into(),
                            quiet: false,
                        }
                    },
                },
                clock_ms - ago_ms,
            );
            if boots {
                let fetch = Fetch {
                    stage: Stage::Initrd,
                    image: Some(ImageRef::new(&"debian".parse().unwrap(), 7)),
                    file: "initrd.img".into(),
                    via: Via::Http,
                };
                c.fetched(ip, fetch, clock_ms - ago_ms);
            }
        }
        SiteClients {
            site: label.into(),
            node: format!("{label}-id"),
            generated_ms: clock_ms,
            machines: c.machines(),
            left_out: 0,
        }
    }

    fn silent(peer: &str) -> Answer {
        Answer::Silent(Silent {
            peer: peer.into(),
            node: "b-id".into(),
            why: "no answer within 5 s".into(),
        })
    }

    #[test]
    fn sites_merge_on_their_own_clocks_and_silent_peers_stay_listed() {
        // C's clock is an hour ahead of A's: ages, not timestamps, decide the order.
        let a = site("hq", 1_000_000, &[("52:54:00:00:00:0a", 30_000)]);
        let c = site(
            "branch-c",
            4_600_000,
            &[("52:54:00:00:00:0c", 10_000), ("00:11:22:33:44:55", 50_000)],
        );
        let view = merge(
            7,
            vec![
                Answer::Machines(c),
                silent("b.example:7311"),
                Answer::Machines(a),
            ],
        );
        assert_eq!(view.generated_ms, 7);
        let rows: Vec<(&str, String, u64, &str)> = view
            .machines
            .iter()
            .map(|m| {
                (
                    m.site.as_str(),
                    m.machine.mac.to_string(),
                    m.seen_ago_ms,
                    m.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("branch-c", "52:54:00:00:00:0c".into(), 10_000, "initrd"),
                ("hq", "52:54:00:00:00:0a".into(), 30_000, "initrd"),
                (
                    "branch-c",
                    "00:11:22:33:44:55".into(),
                    50_000,
                    "not answered: not a PXE client"
                ),
            ]
        );
        assert_eq!(view.site_labels(), ["branch-c", "hq"]);
        assert_eq!(view.silent.len(), 1);

        let mut one = view.clone();
        one.only_site("hq");
        assert_eq!(one.machines.len(), 1);
        assert_eq!(one.site_labels(), ["hq"]);
        assert_eq!(one.silent, view.silent, "a silent peer may be that site");
    }

    #[test]
    fn the_json_lists_each_machine_flat_with_its_site() {
        let view = merge(
            0,
            vec![Answer::Machines(site(
                "hq",
                100_000,
                &[("52:54:00:00:00:0a", 1_000)],
            ))],
        );
        let json: serde_json::Value = serde_json::to_value(&view).unwrap();
        let m = &json["machines"][0];
        assert_eq!(m["site"], "hq");
        assert_eq!(m["node"], "hq-id");
        assert_eq!(m["mac"], "52:54:00:00:00:0a");
        assert_eq!(m["arch"], "EFI x86-64");
        assert_eq!(m["outcome"], "initrd");
        let back: FleetClientsView = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            json,
            "reads back the same"
        );
    }

    #[test]
    fn an_answer_too_large_leaves_out_the_least_recently_seen() {
        let macs: Vec<String> = (0..100u32)
            .map(|i| format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256))
            .collect();
        let list: Vec<(&str, u64)> = macs
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i as u64 * 1_000))
            .collect();
        let full = site("hq", 1_000_000, &list);
        let whole = full.clone().encode_bounded(usize::MAX);
        let back: SiteClients = serde_json::from_slice(&whole).unwrap();
        let json = |s: &SiteClients| serde_json::to_value(s).unwrap();
        assert_eq!(json(&back), json(&full));

        let max = whole.len() / 5;
        let cut = full.clone().encode_bounded(max);
        assert!(cut.len() <= max, "{} > {max}", cut.len());
        let back: SiteClients = serde_json::from_slice(&cut).unwrap();
        assert!(!back.machines.is_empty() && back.left_out > 0);
        assert_eq!(back.machines.len() + back.left_out, 100);
        let macs = |s: &SiteClients| s.machines.iter().map(|m| m.mac).collect::<Vec<_>>();
        assert_eq!(
            macs(&back)[..],
            macs(&full)[..back.machines.len()],
            "the most recently seen are kept"
        );
    }

    #[test]
    fn the_fleet_table_has_site_and_node_and_says_who_did_not_answer() {
        let mut hq = site("hq", 100_000, &[("52:54:00:00:00:0a", 61_000)]);
        hq.left_out = 3;
        let view = merge(0, vec![Answer::Machines(hq), silent("b.example:7311")]);
        let table = text::render_fleet(&view, false);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("SITE  NODE   MAC"), "{table}");
        assert_eq!(
            lines[1],
            "hq    hq-id  52:54:00:00:00:0a  EFI x86-64  PXEClient  61 s ago   debian v7  initrd"
        );
        assert_eq!(
            &lines[2..],
            [
                "site hq (hq-id): 3 least recently seen machines left out (answer size limit)",
                "peer b.example:7311 (b-id): no answer: no answer within 5 s",
            ]
        );
        let unknown = text::render_fleet(&view, true);
        assert!(unknown.starts_with("no unknown machines\n"), "{unknown}");
        assert!(unknown.contains("peer b.example:7311"), "{unknown}");
    }
}
