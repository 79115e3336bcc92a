//! The status page (`GET /`): server-rendered HTML, no JavaScript, readable on a phone. Every
//! text it prints goes through maud's escaping: command lines, peer labels and refusal
//! reasons come from publishers and the network.

use maud::{html, Markup, DOCTYPE};

use super::{ago, human_bytes, state_line, BootStatus, NodeStatus, ReleaseState};

/// How often the page reloads itself (seconds).
pub const REFRESH_SECS: u32 = 5;

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0.5em;max-width:70em;line-height:1.35}\
table{border-collapse:collapse;width:100%;margin-bottom:1em}\
th,td{text-align:left;vertical-align:top;padding:0.25em 0.5em;border-bottom:1px solid #ddd;\
overflow-wrap:anywhere}\
th{background:#f3f3f3}\
code{font-size:0.9em;overflow-wrap:anywhere}\
progress{width:8em}\
.complete{color:#176117}.fetching{color:#7a5200}.refused,.expired{color:#a11}\
@media (max-width:40em){thead{display:none}tr{display:block;border-bottom:2px solid #ccc}\
td{display:block;border:0}}";

/// The whole page for `status`.
pub fn page(status: &NodeStatus) -> String {
    let node = &status.node;
    let now = status.generated_at;
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content=(REFRESH_SECS);
                title { "netboot on " (node.hostname) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                h1 { "netboot on " (node.hostname) }
                table {
                    tbody {
                        tr { th { "version" } td { (node.version) } }
                        tr { th { "fleet id" } td { code { (node.fleet_id.as_deref().unwrap_or("no [fleet] section")) } } }
                        tr { th { "DHCP" } td { (node.dhcp_mode) @if let Some(i) = &node.dhcp_interface { " on " (i) } } }
                        tr { th { "HTTP" } td { (node.http_listen) " (clients use " (node.base_url) ")" } }
                        tr { th { "TFTP" } td { (node.tftp_listen.as_deref().unwrap_or("off")) } }
                        tr { th { "fleet" } td { (node.fleet_listen.as_deref().unwrap_or("off")) } }
                        tr { th { "site" } td { (node.site.as_deref().unwrap_or("no [node] site")) } }
                        tr { th { "boot policy" } td { @match &status.policy {
                            Some(p) => (p.line(status.generated_at)),
                            None => "none held ([machines] and default_image decide)",
                        } } }
                    }
                }
                h2 { "Releases" }
                @if status.releases.is_empty() {
                    p { "No releases yet." }
                } @else {
                    table {
                        thead { tr { th { "release" } th { "size" } th { "state" } th { "boots" } } }
                        tbody {
                            @for r in &status.releases {
                                tr class="release" data-state=(r.state.label()) {
                                    td { b { (r.name) } " v" (r.version) }
                                    td { (r.size_bytes.map(human_bytes).unwrap_or_default()) }
                                    td class=(r.state.label()) {
                                        @if let ReleaseState::Fetching { held_bytes, total_bytes, .. } = &r.state {
                                            progress value=(held_bytes) max=(total_bytes) {}
                                            " "
                                        }
                                        (state_line(&r.state, now))
                                    }
                                    td {
                                        @match &r.boot {
                                            Some(BootStatus::Linux { kernel, initrds, cmdline }) => {
                                                "Linux " code { (kernel) }
                                                @for i in initrds { " + " code { (i) } }
                                                br; code class="cmdline" { (cmdline) }
                                            }
                                            Some(BootStatus::Iso { iso }) => { "ISO " code { (iso) } }
                                            None => {
                                                @for (n, f) in r.files.iter().enumerate() {
                                                    @if n > 0 { ", " }
                                                    code { (f.path) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                h2 { "Peers" }
                @if status.peers.is_empty() {
                    p { "No fleet peers." }
                } @else {
                    table {
                        thead { tr { th { "peer" } th { "link" } th { "round trip" } th { "last contact" } th { "received" } } }
                        tbody {
                            @for p in &status.peers {
                                tr class="peer" {
                                    td { (p.label) br; code { (p.id) } }
                                    td {
                                        @if p.connected { "connected" } @else { "not connected" }
                                        @if p.avoided { ", avoided (sent bad data)" }
                                    }
                                    td { @if let Some(ms) = p.rtt_ms { (format!("{ms:.1} ms")) } @else { "—" } }
                                    td { @if let Some(t) = p.last_contact { (ago(t, now)) } @else { "never" } }
                                    td { (human_bytes(p.received_bytes)) }
                                }
                            }
                        }
                    }
                }
                h2 { "Last client boots" }
                @if status.boots.is_empty() {
                    p { "No client has asked this node yet." }
                } @else {
                    table {
                        thead { tr { th { "when" } th { "client" } th { "arch" } th { "image" } th { "got as far as" } } }
                        tbody {
                            @for b in &status.boots {
                                tr class="boot" {
                                    td { (ago(b.started, now)) }
                                    td {
                                        (b.mac.as_deref().unwrap_or("MAC not yet known"))
                                        @if let Some(ip) = &b.ip { br; (ip) }
                                    }
                                    td { (b.arch.as_deref().unwrap_or("?")) }
                                    td { (b.image.as_deref().unwrap_or("—")) }
                                    td {
                                        (b.reached.as_deref().unwrap_or("—"))
                                        @if let Some(why) = &b.ignored { br; "not answered: " (why) }
                                        @if let Some(f) = &b.last_file { br; small { "last file " code { (f) } } }
                                    }
                                }
                            }
                        }
                    }
                }
                p {
                    small {
                        "Refreshes every " (REFRESH_SECS) " s. The same as JSON: "
                        a href="/status.json" { "/status.json" }
                        "; in a terminal: " code { "netboot status --node " (node.base_url) }
                    }
                }
            }
        }
    };
    markup.into_string()
}
