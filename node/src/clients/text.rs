//! `netboot clients`: the machines of a [`ClientsView`] as a table for people.

use std::fmt::Write;

use super::{ClientsView, Machine};
use crate::status::ago;

/// A machine the operator has to look at: it was given no image (not answered, or nothing
/// assigned to it yet).
pub fn is_unknown(m: &Machine) -> bool {
    m.image.is_none()
}

/// How far its last boot got, or why it was not answered.
pub fn how_far(m: &Machine) -> String {
    let furthest = m.last_boot.as_ref().and_then(|b| b.furthest());
    match (&m.not_answered, furthest) {
        (Some(why), _) => format!("not answered: {why}"),
        (None, Some(stage)) => stage.as_str().to_string(),
        (None, None) => "-".into(),
    }
}

pub fn render(view: &ClientsView, only_unknown: bool) -> String {
    let now = view.generated_ms / 1000;
    let rows: Vec<[String; 6]> = view
        .machines
        .iter()
        .filter(|m| !only_unknown || is_unknown(m))
        .map(|m| {
            [
                m.mac.to_string(),
                m.arch.clone().unwrap_or_else(|| "-".into()),
                m.vendor.clone().unwrap_or_else(|| "-".into()),
                ago(m.last_seen_ms / 1000, now),
                m.image
                    .as_ref()
                    .map_or_else(|| "-".into(), |i| format!("{} v{}", i.name, i.version)),
                how_far(m),
            ]
        })
        .collect();
    if rows.is_empty() {
        return if only_unknown {
            "no unknown machines\n".into()
        } else {
            "no machines seen yet\n".into()
        };
    }
    let header = ["MAC", "ARCH", "VENDOR", "LAST SEEN", "IMAGE", "HOW FAR"];
    let mut width = header.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header.map(String::from)).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(width) {
            let _ = write!(line, "{cell:w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
