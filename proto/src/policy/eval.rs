//! Evaluating a policy for one client: first matching rule, else the site's default, else the
//! fleet-wide default, else "unknown machine" — with the reasons, for `netboot policy explain`
//! and for the node's log line about each client.

use std::fmt;

use super::{rule_label, Action, Arch, Mac, NodeRef, Policy, Rule};

/// What a node knows about a client when it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client<'a> {
    pub mac: Mac,
    /// The site label of the node answering.
    pub site: &'a str,
    /// The fleet identity of the node answering, if it has one.
    pub node: Option<NodeRef>,
    /// `None` when the client did not say (or said something no rule can name).
    pub arch: Option<Arch>,
}

/// Why a rule applied: which of its criteria the client met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// `None`: the rule names no machines; otherwise the MAC itself or the group holding it.
    pub machine: Option<String>,
    /// `None`: every site; otherwise the site label or node id listed.
    pub site: Option<String>,
    /// `None`: every architecture.
    pub arch: Option<Arch>,
}

/// Why a rule did not apply (the first criterion that failed, in the order machine, site,
/// architecture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Machine,
    Site,
    Arch { unknown: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Rule {
        index: usize,
        label: String,
        action: Action,
        once: bool,
        why: RuleMatch,
    },
    SiteDefault {
        site: String,
        action: Action,
    },
    Default {
        action: Action,
    },
    /// No rule matched and no default applies: the node should not boot this machine and
    /// should list it so the operator can assign it.
    Unknown,
}

impl Verdict {
    pub fn action(&self) -> Option<&Action> {
        match self {
            Verdict::Rule { action, .. }
            | Verdict::SiteDefault { action, .. }
            | Verdict::Default { action } => Some(action),
            Verdict::Unknown => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub verdict: Verdict,
    /// Every rule before the verdict's, with why it did not apply.
    pub skipped: Vec<(String, Mismatch)>,
}

fn machine_match(policy: &Policy, rule: &Rule, mac: Mac) -> Result<Option<String>, Mismatch> {
    if rule.macs.is_empty() && rule.groups.is_empty() {
        return Ok(None);
    }
    if rule.macs.contains(&mac) {
        return Ok(Some(format!("MAC {mac} is listed")));
    }
    rule.groups
        .iter()
        .find(|g| {
            policy
                .groups
                .get(*g)
                .is_some_and(|macs| macs.contains(&mac))
        })
        .map(|g| Some(format!("MAC {mac} is in group {g}")))
        .ok_or(Mismatch::Machine)
}

fn site_match(rule: &Rule, client: &Client) -> Result<Option<String>, Mismatch> {
    if rule.sites.is_empty() && rule.nodes.is_empty() {
        return Ok(None);
    }
    if rule.sites.contains(client.site) {
        return Ok(Some(format!("site {} is listed", client.site)));
    }
    match client.node {
        Some(node) if rule.nodes.contains(&node) => Ok(Some(format!("node {node} is listed"))),
        _ => Err(Mismatch::Site),
    }
}

fn arch_match(rule: &Rule, client: &Client) -> Result<Option<Arch>, Mismatch> {
    if rule.archs.is_empty() {
        return Ok(None);
    }
    match client.arch {
        Some(arch) if rule.archs.contains(&arch) => Ok(Some(arch)),
        Some(_) => Err(Mismatch::Arch { unknown: false }),
        None => Err(Mismatch::Arch { unknown: true }),
    }
}

impl Policy {
    /// Which action this client gets, and why. Pure: the same policy and client give the same
    /// answer on every node.
    pub fn evaluate(&self, client: &Client) -> Explanation {
        let mut skipped = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let label = rule_label(index, rule);
            let matched = machine_match(self, rule, client.mac).and_then(|machine| {
                let site = site_match(rule, client)?;
                let arch = arch_match(rule, client)?;
                Ok(RuleMatch {
                    machine,
                    site,
                    arch,
                })
            });
            match matched {
                Ok(why) => {
                    return Explanation {
                        verdict: Verdict::Rule {
                            index,
                            label,
                            action: rule.action.clone(),
                            once: rule.once,
                            why,
                        },
                        skipped,
                    }
                }
                Err(mismatch) => skipped.push((label, mismatch)),
            }
        }
        let verdict = if let Some(action) = self.site_defaults.get(client.site) {
            Verdict::SiteDefault {
                site: client.site.to_string(),
                action: action.clone(),
            }
        } else if let Some(action) = &self.default {
            Verdict::Default {
                action: action.clone(),
            }
        } else {
            Verdict::Unknown
        };
        Explanation { verdict, skipped }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Machine => f.write_str("the MAC is neither listed nor in a listed group"),
            Mismatch::Site => f.write_str("the site is not listed (neither label nor node id)"),
            Mismatch::Arch { unknown: false } => f.write_str("the architecture is not listed"),
            Mismatch::Arch { unknown: true } => {
                f.write_str("the rule names architectures and the client's is not known")
            }
        }
    }
}

/// Multi-line, for people: one line per skipped rule, then the verdict.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (label, why) in &self.skipped {
            writeln!(f, "{label}: skipped: {why}")?;
        }
        match &self.verdict {
            Verdict::Rule {
                label,
                action,
                once,
                why,
                ..
            } => {
                let machine = why.machine.as_deref().unwrap_or("every machine");
                let site = why.site.as_deref().unwrap_or("every site");
                let arch = why.arch.map_or("every architecture".to_string(), |a| {
                    format!("arch {a} is listed")
                });
                let once = if *once { " once (one-shot)" } else { "" };
                write!(
                    f,
                    "{label}: MATCH ({machine}; {site}; {arch}) -> {action}{once}"
                )
            }
            Verdict::SiteDefault { site, action } => {
                write!(f, "no rule matched: default for site {site} -> {action}")
            }
            Verdict::Default { action } => {
                write!(
                    f,
                    "no rule matched, site has no default: fleet-wide default -> {action}"
                )
            }
            Verdict::Unknown => {
                f.write_str("no rule matched and no default applies: unknown machine (not booted)")
            }
        }
    }
}
