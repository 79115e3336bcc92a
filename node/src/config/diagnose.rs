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

use super::{Config, Problem};

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
        list.push(Mistake {
            line: at.map(|at| line_of(text, at)),
            field: dotted(&field),
            problem: e.message().trim_end().to_string(),
        });
        // Without a key to take out, reading again would find the same error.
        if field.is_empty() || list.len() >= MAX_MISTAKES || !remove(&mut root, &field) {
            break None;
        }
        removed.push(field);
    };
    if let Some(config) = &config {
        for Problem { field, message } in config.problems() {
            let path: Vec<String> = field.split('.').map(str::to_string).collect();
            // A field taken out above reads as its default: a check on it would be wrong.
            let touched = |r: &Vec<String>| path.starts_with(r) || r.starts_with(&path);
            if removed.iter().any(touched) {
                continue;
            }
            list.push(Mistake {
                line: locate(&root, &path).map(|at| line_of(text, at)),
                field,
                problem: message,
            });
        }
    }
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
