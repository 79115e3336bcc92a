//! The policy an operator writes (`policy.toml`), compiled into a [`Policy`] for signing.
//!
//! ```toml
//! default = { local = true }            # fleet-wide, for machines no rule matches
//!
//! [groups]
//! kiosks = ["52:54:00:00:00:01", "52:54:00:00:00:02"]
//!
//! [defaults]                            # per site label, before the fleet-wide default
//! lab = { menu = true }
//!
//! [[rule]]
//! name = "kiosks"
//! groups = ["kiosks"]
//! sites = ["branch-1", "branch-2"]
//! image = "kiosk-2026.11"
//! ```
//!
//! Errors name the line (and the rule) at fault.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use super::{check_label, rule_label, Action, Arch, Mac, NodeRef, Policy, PolicyError, Rule};
use crate::{ImageName, PublicKey};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("{0}")]
    Toml(String),
    #[error("line {line}: {message}")]
    At { line: usize, message: String },
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

/// What the signer adds to the operator's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMeta {
    pub version: u64,
    pub created: u64,
    pub expires: Option<u64>,
    pub publisher: PublicKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    default: Option<Spanned<RawAction>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    defaults: BTreeMap<String, Spanned<RawAction>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

/// Exactly one of `image` (optionally with `version`), `menu = true`, `local = true`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    image: Option<String>,
    version: Option<u64>,
    #[serde(default)]
    menu: bool,
    #[serde(default)]
    local: bool,
}

/// The action's fields are repeated rather than `#[serde(flatten)]`ed: serde ignores
/// `deny_unknown_fields` with flatten, and a misspelt key must be an error, not a rule that
/// silently matches more than intended.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    #[serde(default)]
    machines: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    archs: Vec<String>,
    image: Option<String>,
    version: Option<u64>,
    #[serde(default)]
    menu: bool,
    #[serde(default)]
    local: bool,
    #[serde(default)]
    once: bool,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn action(raw: &RawAction) -> Result<Action, String> {
    match (&raw.image, raw.menu, raw.local) {
        (Some(name), false, false) => Ok(Action::Image {
            name: name
                .parse::<ImageName>()
                .map_err(|e| format!("image: {e}"))?,
            version: raw.version,
        }),
        (None, true, false) | (None, false, true) if raw.version.is_some() => {
            Err("version pins an image; it needs `image`".into())
        }
        (None, true, false) => Ok(Action::Menu),
        (None, false, true) => Ok(Action::Local),
        _ => Err("give exactly one of image = \"<name>\", menu = true, local = true".into()),
    }
}

fn parse_all<T>(
    field: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<BTreeSet<T>, String>
where
    T: Ord,
{
    values
        .iter()
        .map(|v| parse(v).map_err(|e| format!("{field}: {e}")))
        .collect()
}

fn label(s: &str) -> Result<String, String> {
    check_label(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn rule(raw: &RawRule) -> Result<Rule, String> {
    if let Some(name) = &raw.name {
        label(name).map_err(|e| format!("name: {e}"))?;
    }
    let action = action(&RawAction {
        image: raw.image.clone(),
        version: raw.version,
        menu: raw.menu,
        local: raw.local,
    })?;
    Ok(Rule {
        name: raw.name.clone(),
        macs: parse_all("machines", &raw.machines, str::parse::<Mac>)?,
        groups: raw.groups.iter().cloned().collect(),
        sites: parse_all("sites", &raw.sites, label)?,
        nodes: parse_all("nodes", &raw.nodes, str::parse::<NodeRef>)?,
        archs: parse_all("archs", &raw.archs, str::parse::<Arch>)?,
        action,
        once: raw.once,
    })
}

/// Parses and checks `policy.toml`; the result is ready for [`super::SignedPolicy::sign`].
pub fn parse_source(text: &str, meta: SourceMeta) -> Result<Policy, SourceError> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| SourceError::Toml(e.to_string()))?;
    let at = |span: std::ops::Range<usize>, message: String| SourceError::At {
        line: line_of(text, span.start),
        message,
    };
    let mut groups = BTreeMap::new();
    for (name, macs) in &raw.groups {
        let set = label(name)
            .map_err(|e| format!("group {name:?}: {e}"))
            .and_then(|_| parse_all(&format!("group {name}"), macs.get_ref(), str::parse::<Mac>))
            .map_err(|m| at(macs.span(), m))?;
        groups.insert(name.clone(), set);
    }
    let mut rules = Vec::new();
    for (i, spanned) in raw.rule.iter().enumerate() {
        let r = rule(spanned.get_ref()).map_err(|m| {
            let label = match &spanned.get_ref().name {
                Some(name) => format!("[[rule]] {} {name:?}", i + 1),
                None => format!("[[rule]] {}", i + 1),
            };
            at(spanned.span(), format!("{label}: {m}"))
        })?;
        rules.push(r);
    }
    let mut site_defaults = BTreeMap::new();
    for (site, a) in &raw.defaults {
        let act = label(site)
            .and_then(|_| action(a.get_ref()))
            .map_err(|m| at(a.span(), format!("defaults.{site}: {m}")))?;
        site_defaults.insert(site.clone(), act);
    }
    let default = match &raw.default {
        Some(a) => Some(action(a.get_ref()).map_err(|m| at(a.span(), format!("default: {m}")))?),
        None => None,
    };
    let policy = Policy {
        version: meta.version,
        created: meta.created,
        expires: meta.expires,
        publisher: meta.publisher,
        groups,
        rules,
        site_defaults,
        default,
    };
    // Consistency errors (an undefined group, a bad label) name the rule as written; point at
    // its line too.
    policy.validate().map_err(|e| match &e {
        PolicyError::UnknownGroup { rule, .. }
        | PolicyError::OnceWithoutImage(rule)
        | PolicyError::ZeroPin(rule) => {
            match policy
                .rules
                .iter()
                .enumerate()
                .position(|(i, r)| &rule_label(i, r) == rule)
            {
                Some(i) => at(raw.rule[i].span(), e.to_string()),
                None => SourceError::Invalid(e),
            }
        }
        _ => SourceError::Invalid(e),
    })?;
    Ok(policy)
}
