//! Finding every mistake in a config file, each as `FILE:LINE: field: problem`.
//!
//! serde stops at the first error, so the document is parsed once into a table that keeps
//! the position of every key and value; each error is located in it by its position, the key
//! at fault is taken out, and the rest is read again, until it reads cleanly. Then the
//! checks across fields run on the result, each located by the field it names. Pure: no
//! sockets, no files (the caller reads the text).

use std::{
    fmt,
    ops::Range,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use toml::{
    de::{DeTable, DeValue},
    Spanned,
};

use super::Config;

/// One mistake: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mistake {
    /// 1-based; `None` when the field is not in the file (a missing setting).
    pub line: Option<usize>,
    /// The field as a dotted path (`dhcp.pool.range_start`); `syntax` for TOML syntax.
    pub field: String,
    pub problem: String,
}

/// Every mistake in one file, printed one per line.
#[derive(Debug, Clone)]
pub struct Mistakes {
    pub path: PathBuf,
    pub list: Vec<Mistake>,
}

impl fmt::Display for Mistakes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:", self.path.display())?;
            if let Some(line) = m.line {
                write!(f, "{line}:")?;
            }
            write!(f, " {}: {}", m.field, m.problem)?;
        }
        Ok(())
    }
}

/// More than this and the file is not a netboot config at all; the first ones say so.
const MAX_MISTAKES: usize = 50;

/// The config in `text`, or every mistake in it. `path` is only named in messages.
pub fn diagnose(text: &str, path: &Path) -> Result<Config, Mistakes> {
    diagnose_as(text, path, false)
}

/// The same, plus what only a node needs ([`Config::node_problems`]): `netboot check-config`.
pub fn diagnose_node(text: &str, path: &Path) -> Result<Config, Mistakes> {
    diagnose_as(text, path, true)
}

fn diagnose_as(text: &str, path: &Path, for_node: bool) -> Result<Config, Mistakes> {
    let mistakes = |list| Mistakes {
        path: path.to_path_buf(),
        list,
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let list = syntax
            .iter()
            .map(|e| Mistake {
                line: e.span().map(|s| line_of(text, s.start)),
                field: "syntax".into(),
                problem: e.message().trim_end().to_string(),
            })
            .collect();
        return Err(mistakes(list));
    }
    let (span, mut root) = (doc.span(), doc.into_inner());
    let mut list = Vec::new();
    let mut removed: Vec<Vec<String>> = Vec::new();
    let config = loop {
        let de = toml::de::Deserializer::from(Spanned::new(span.clone(), root.clone()));
        let e = match Config::deserialize(de) {
            Ok(config) => break Some(config),
            Err(e) => e,
        };
        let at = e.span().map(|s| s.start);
        let field = at.map(|at| path_at(&root, at)).unwrap_or_default();
        // A table whose key was taken out now misses it ("missing field"): not a mistake
        // of its own.
        let follows_from_removal = removed.iter().any(|r| r.starts_with(&field));
        if !follows_from_removal {
            list.push(Mistake {
                line: at.map(|at| line_of(text, at)),
                field: dotted(&field),
                problem: e.message().trim_end().to_string(),
            });
        }
        // Without a key to take out, reading again would find the same error.
        if field.is_empty() || list.len() >= MAX_MISTAKES || !remove(&mut root, &field) {
            break None;
        }
        removed.push(field);
    };
    if let Some(config) = &config {
        let node = if for_node {
            config.node_problems()
        } else {
            Vec::new()
        };
        for problem in config.problems().into_iter().chain(node) {
            let split = |f: &str| f.split('.').map(str::to_string).collect::<Vec<_>>();
            let path = split(&problem.field);
            // A field taken out above reads as its default: a check that reads it is moot.
            let moot = std::iter::once(path.clone())
                .chain(problem.involves.iter().map(|f| split(f)))
                .any(|p| {
                    removed
                        .iter()
                        .any(|r| p.starts_with(r) || r.starts_with(&p))
                });
            if moot {
                continue;
            }
            list.push(Mistake {
                line: locate(&root, &path).map(|at| line_of(text, at)),
                field: problem.field,
                problem: problem.message,
            });
        }
    }
    // In file order, as an editor shows them; missing settings last.
    list.sort_by_key(|m| m.line.unwrap_or(usize::MAX));
    match config {
        Some(config) if list.is_empty() => Ok(config),
        _ => Err(mistakes(list)),
    }
}

fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).unwrap_or(text).matches('\n').count() + 1
}

fn contains(span: &Range<usize>, at: usize) -> bool {
    span.start <= at && at < span.end.max(span.start + 1)
}

/// The path of the innermost key whose name or value holds byte `at`.
fn path_at(table: &DeTable<'_>, at: usize) -> Vec<String> {
    for (key, value) in table.iter() {
        if contains(&key.span(), at) {
            return vec![key.get_ref().to_string()];
        }
        if contains(&value.span(), at) {
            let mut path = vec![key.get_ref().to_string()];
            if let DeValue::Table(inner) = value.get_ref() {
                path.extend(path_at(inner, at));
            }
            return path;
        }
        // A table opened by a header (`[dhcp.pool]`) spans only its header; its keys follow.
        if let DeValue::Table(inner) = value.get_ref() {
            let inner_path = path_at(inner, at);
            if !inner_path.is_empty() {
                let mut path = vec![key.get_ref().to_string()];
                path.extend(inner_path);
                return path;
            }
        }
    }
    Vec::new()
}

/// Byte offset of the deepest key of `path` present in the document.
fn locate(table: &DeTable<'_>, path: &[String]) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    let (key, value) = table.get_key_value(first.as_str())?;
    let deeper = match value.get_ref() {
        DeValue::Table(inner) => locate(inner, rest),
        _ => None,
    };
    Some(deeper.unwrap_or(key.span().start))
}

fn remove(table: &mut DeTable<'_>, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.remove(last.as_str()).is_some(),
        [first, rest @ ..] => match table.get_mut(first.as_str()).map(|v| v.get_mut()) {
            Some(DeValue::Table(inner)) => remove(inner, rest),
            _ => false,
        },
    }
}

/// `machines."52:54:00:12:34:56"`: keys that are not bare TOML keys are quoted.
fn dotted(path: &[String]) -> String {
    if path.is_empty() {
        return "(top level)".into();
    }
    let bare = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    path.iter()
        .map(|k| if bare(k) { k.clone() } else { format!("{k:?}") })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519:8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";

    fn mistakes(text: &str) -> Vec<String> {
        match diagnose(text, Path::new("/etc/netboot/site.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(m) => m.to_string().lines().map(str::to_string).collect(),
        }
    }

    /// One mistake of each kind: the exact `FILE:LINE: field:` it is reported at, and a
    /// word of the problem.
    #[test]
    fn each_kind_of_mistake_names_file_line_and_field() {
        let pool = "[dhcp.pool]\nrange_start = \"10.0.0.100\"\nrange_end = \"10.0.0.200\"\nsubnet_mask = \"255.255.255.0\"\n";
        let cases: &[(&str, String, &str, &str)] = &[
            (
                "syntax error",
                "data_dir = \"/d\"\n[dhcp\nmode = \"proxy\"\n".into(),
                "2: syntax:",
                "",
            ),
            (
                "unknown field",
                "[tftp]\nenabled = true\nmax_transfer = 10\n".into(),
                "3: tftp.max_transfer:",
                "unknown field",
            ),
            (
                "wrong type",
                "\n[http]\nmax_connections = \"many\"\n".into(),
                "3: http.max_connections:",
                "invalid type",
            ),
            (
                "bad address",
                "[dhcp]\nmode = \"proxy\"\nserver_ip = \"10.0.0.300\"\n".into(),
                "3: dhcp.server_ip:",
                "address",
            ),
            (
                "bad key",
                format!("trusted_publishers = [\n  \"{KEY}\",\n  \"ed25519:abc\",\n]\n"),
                // serde reports the array, located at its first line.
                "1: trusted_publishers:",
                "ed25519:abc",
            ),
            (
                "invalid value",
                "[dhcp]\nmode = \"relay\"\n".into(),
                "2: dhcp.mode:",
                "relay",
            ),
            (
                "server_ip outside the pool's subnet",
                format!("[dhcp]\nmode = \"server\"\nserver_ip = \"10.9.0.1\"\n{pool}"),
                "3: dhcp.server_ip:",
                "outside the pool's subnet 10.0.0.0/24",
            ),
            (
                "pool range across subnets",
                "[dhcp]\nmode = \"server\"\n[dhcp.pool]\nrange_start = \"10.0.0.100\"\nrange_end = \"10.0.1.20\"\nsubnet_mask = \"255.255.255.0\"\n".into(),
                "5: dhcp.pool.range_end:",
                "not inside one subnet",
            ),
            (
                "server mode without a pool",
                "[dhcp]\ninterface = \"lab0\"\nmode = \"server\"\n".into(),
                "3: dhcp.mode:",
                "needs a [dhcp.pool]",
            ),
            (
                "a pool without server mode",
                format!("[dhcp]\nmode = \"proxy\"\n{pool}"),
                "3: dhcp.pool:",
                "only with mode = \"server\"",
            ),
            (
                "impossible loader combination",
                "[boot]\ndefault_image = \"debian\"\nefi_loader = \"pxelinux\"\n".into(),
                "3: boot.efi_loader:",
                "BIOS-only",
            ),
        ];
        for (kind, text, at, word) in cases {
            let got = mistakes(text);
            let want = format!("/etc/netboot/site.toml:{at} ");
            assert!(
                got.len() == 1 && got[0].starts_with(&want) && got[0].contains(word),
                "{kind}: want one line starting {want:?} containing {word:?}, got {got:#?}"
            );
        }
    }

    #[test]
    fn every_mistake_is_reported_not_only_the_first() {
        let text = format!(
            "trusted_publishers = [\"{KEY}\"]\ndata_dir = 7\n[dhcp]\nmode = \"server\"\nserver_ip = \"10.0.0.1\"\n[dhcp.pool]\nrange_start = \"10.0.0.100\"\nrange_end = \"10.0.0.20\"\nsubnet_mask = \"255.255.255.0\"\n[tftp]\nmax_transfers = -1\n[boot]\nbios_loader = \"grub\"\n[store]\nkeep_versions = 0\nkeep = 1\n"
        );
        let got = mistakes(&text);
        let fields: Vec<&str> = got
            .iter()
            .map(|l| l.split(':').nth(2).unwrap_or("").trim())
            .collect();
        assert_eq!(
            fields,
            [
                "data_dir",
                "dhcp.pool.range_start",
                "tftp.max_transfers",
                "boot.bios_loader",
                "store.keep_versions",
                "store.keep",
            ],
            "{got:#?}"
        );
        let lines: Vec<&str> = got.iter().map(|l| l.split(':').nth(1).unwrap()).collect();
        assert_eq!(lines, ["2", "7", "11", "13", "15", "16"], "{got:#?}");
    }

    #[test]
    fn a_check_on_a_field_already_reported_is_not_repeated() {
        // The pool's bad value removes the pool; "server mode needs a pool" would be wrong.
        let got = mistakes("[dhcp]\nmode = \"server\"\n[dhcp.pool]\nrange_start = \"x\"\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].starts_with("/etc/netboot/site.toml:4: dhcp.pool.range_start: "),
            "{got:#?}"
        );
    }

    #[test]
    fn what_only_a_node_needs_is_checked_for_a_node() {
        let text = format!("trusted_publishers = [\"{KEY}\"]\n[dhcp]\nmode = \"proxy\"\n");
        // publish and images read the same file for its data dir: fine for them.
        assert!(diagnose(&text, Path::new("/n.toml")).is_ok());
        let got = diagnose_node(&text, Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        // Not in the file: located at the section it belongs in.
        assert!(
            got.starts_with("/n.toml:2: dhcp.server_ip: not set"),
            "{got}"
        );
        let got = diagnose_node("", Path::new("/n.toml"))
            .unwrap_err()
            .to_string();
        assert!(got.starts_with("/n.toml: dhcp.server_ip: not set"), "{got}");
        let with_if = format!("{text}interface = \"eno1\"\n");
        assert!(diagnose_node(&with_if, Path::new("/n.toml")).is_ok());
    }
}
