//! `netboot status` in a terminal: the snapshot as aligned plain text.

use std::fmt::Write;

use super::{ago, human_bytes, state_line, NodeStatus};

/// A cell as the terminal may show it: control characters (a DHCP vendor class is the
/// client's to choose) are written as escapes, so they cannot drive the terminal.
fn printable(cell: &str) -> String {
    cell.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Pads each column of `rows` to its widest cell; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn render(status: &NodeStatus) -> String {
    let n = &status.node;
    let now = status.generated_at;
    let mut out = String::new();
    let _ = writeln!(out, "netboot {} on {}", n.version, n.hostname);
    let node_rows = vec![
        vec![
            "fleet id".into(),
            n.fleet_id
                .clone()
                .unwrap_or_else(|| "no [fleet] section".into()),
        ],
        vec![
            "DHCP".into(),
            match &n.dhcp_interface {
                Some(i) => format!("{} on {i}", n.dhcp_mode),
                None => n.dhcp_mode.clone(),
            },
        ],
        vec![
            "HTTP".into(),
            format!("{} (clients use {})", n.http_listen, n.base_url),
        ],
        vec![
            "TFTP".into(),
            n.tftp_listen.clone().unwrap_or_else(|| "off".into()),
        ],
        vec![
            "fleet".into(),
            n.fleet_listen.clone().unwrap_or_else(|| "off".into()),
        ],
        vec![
            "site".into(),
            n.site.clone().unwrap_or_else(|| "no [node] site".into()),
        ],
        vec![
            "boot policy".into(),
            status.policy.as_ref().map_or_else(
                || "none held ([machines] and default_image decide)".into(),
                |p| p.line(now),
            ),
        ],
    ];
    out.push_str(&table(&node_rows));
    out.push_str("\nRELEASES\n");
    if status.releases.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut rows = vec![vec!["release".into(), "size".into(), "state".into()]];
        rows.extend(status.releases.iter().map(|r| {
            vec![
                format!("{} v{}", r.name, r.version),
                r.size_bytes.map(human_bytes).unwrap_or_default(),
                state_line(&r.state, now),
            ]
        }));
        out.push_str(&table(&rows));
    }
    out.push_str("\nPEERS\n");
    if status.peers.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut rows = vec![vec![
            "peer".into(),
            "link".into(),
            "rtt".into(),
            "last contact".into(),
            "received".into(),
        ]];
        rows.extend(status.peers.iter().map(|p| {
            vec![
                p.label.clone(),
                match (p.connected, p.avoided) {
                    (true, false) => "connected".into(),
                    (true, true) => "connected, avoided".into(),
                    (false, _) => "not connected".into(),
                },
                p.rtt_ms
                    .map(|ms| format!("{ms:.1} ms"))
                    .unwrap_or_else(|| "-".into()),
                p.last_contact
                    .map(|t| ago(t, now))
                    .unwrap_or_else(|| "never".into()),
                human_bytes(p.received_bytes),
            ]
        }));
        out.push_str(&table(&rows));
    }
    out.push_str("\nLAST CLIENT BOOTS\n");
    if status.boots.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut rows = vec![vec![
            "when".into(),
            "client".into(),
            "arch".into(),
            "image".into(),
            "got as far as".into(),
        ]];
        rows.extend(status.boots.iter().map(|b| {
            vec![
                ago(b.started, now),
                b.mac
                    .clone()
                    .or_else(|| b.ip.clone())
                    .unwrap_or_else(|| "?".into()),
                b.arch.clone().unwrap_or_else(|| "?".into()),
                b.image.clone().unwrap_or_else(|| "-".into()),
                match (&b.reached, &b.ignored) {
                    (_, Some(why)) => format!("not answered: {why}"),
                    (Some(stage), None) => stage.clone(),
                    (None, None) => "-".into(),
                },
            ]
        }));
        out.push_str(&table(&rows));
    }
    out
}
