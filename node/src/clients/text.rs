//! `netboot clients`: the machines of a [`ClientsView`] as a table for people.

use std::fmt::Write;

use super::{
    fleet::FleetClientsView,
    once::{DoneBy, OnceState},
    ClientsView, Machine,
};
use crate::status::ago;

/// A machine the operator has to look at: it was given no image (not answered, or nothing
/// assigned to it yet).
pub fn is_unknown(m: &Machine) -> bool {
    m.image.is_none()
}

/// How far its last boot got, or why it was not answered; and where its one-shot boot
/// stands, if it has one (ages counted back from `now_ms`, the answering node's clock).
pub fn how_far(m: &Machine, now_ms: u64) -> String {
    let furthest = m.last_boot.as_ref().and_then(|b| b.furthest());
    let mut text = match (&m.not_answered, furthest) {
        (Some(why), _) => format!("not answered: {why}"),
        (None, Some(stage)) => stage.as_str().to_string(),
        (None, None) => "-".into(),
    };
    if let Some(once) = &m.once {
        let state = match once.state {
            OnceState::Pending { .. } => "pending".to_string(),
            OnceState::Done { done_ms, by, .. } => format!(
                "done {} ({})",
                ago(done_ms / 1000, now_ms / 1000),
                match by {
                    DoneBy::Fetched => "kernel and initrd fetched",
                    DoneBy::Callback => "the image called back",
                }
            ),
        };
        let _ = write!(
            text,
            "; once: {state}, {} of policy v{}",
            once.key.rule, once.key.policy_version
        );
    }
    text
}

/// The columns every list shows of a machine, last seen `seen_ago` seconds ago.
fn machine_cells(m: &Machine, seen_ago: u64, how_far: String) -> [String; 6] {
    [
        m.mac.to_string(),
        m.arch.clone().unwrap_or_else(|| "-".into()),
        m.vendor.clone().unwrap_or_else(|| "-".into()),
        ago(0, seen_ago),
        m.image
            .as_ref()
            .map_or_else(|| "-".into(), |i| format!("{} v{}", i.name, i.version)),
        how_far,
    ]
}

const MACHINE_HEADER: [&str; 6] = ["MAC", "ARCH", "VENDOR", "LAST SEEN", "IMAGE", "HOW FAR"];

fn nothing(only_unknown: bool) -> String {
    if only_unknown {
        "no unknown machines\n".into()
    } else {
        "no machines seen yet\n".into()
    }
}

pub fn render(view: &ClientsView, only_unknown: bool) -> String {
    let now = view.generated_ms / 1000;
    let rows: Vec<Vec<String>> = view
        .machines
        .iter()
        .filter(|m| !only_unknown || is_unknown(m))
        .map(|m| {
            let seen_ago = now.saturating_sub(m.last_seen_ms / 1000);
            machine_cells(m, seen_ago, how_far(m, view.generated_ms)).to_vec()
        })
        .collect();
    if rows.is_empty() {
        return nothing(only_unknown);
    }
    table(&MACHINE_HEADER, rows)
}

/// `netboot clients --fleet`: every answering site's machines with their site and node, then
/// one line per peer that did not answer, and why.
pub fn render_fleet(view: &FleetClientsView, only_unknown: bool) -> String {
    let rows: Vec<Vec<String>> = view
        .machines
        .iter()
        .filter(|m| !only_unknown || is_unknown(&m.machine))
        .map(|m| {
            let mut cells = vec![m.site.clone(), m.node.clone()];
            cells.extend(machine_cells(
                &m.machine,
                m.seen_ago_ms / 1000,
                m.outcome.clone(),
            ));
            cells
        })
        .collect();
    let mut out = if rows.is_empty() {
        nothing(only_unknown)
    } else {
        let header: Vec<&str> = ["SITE", "NODE"].into_iter().chain(MACHINE_HEADER).collect();
        table(&header, rows)
    };
    for s in view.sites.iter().filter(|s| s.left_out > 0) {
        let _ = writeln!(
            out,
            "site {} ({}): {} least recently seen machines left out (answer size limit)",
            s.site, s.node, s.left_out
        );
    }
    for s in &view.silent {
        let _ = writeln!(out, "peer {} ({}): no answer: {}", s.peer, s.node, s.why);
    }
    out
}

/// Columns padded to their widest cell, two spaces apart.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&width) {
            let _ = write!(line, "{cell:w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
