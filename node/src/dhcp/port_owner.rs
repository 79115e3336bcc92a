//! Who already holds a UDP port, for the message when the DHCP port is taken.
//!
//! Linux lists sockets in `/proc/net/udp` (this network namespace) with their inode; a
//! process's `/proc/<pid>/fd/*` links name the inodes it holds. Best effort: without the
//! permission to read another process's fds (not root), the answer is just "unknown".

use std::fs;

/// "pid 1234 (dnsmasq)" for every process holding a UDP/IPv4 socket bound to `port`.
pub fn udp_port_holders(port: u16) -> Vec<String> {
    let Ok(table) = fs::read_to_string("/proc/net/udp") else {
        return vec![];
    };
    let inodes = socket_inodes(&table, port);
    if inodes.is_empty() {
        return vec![];
    }
    let Ok(procs) = fs::read_dir("/proc") else {
        return vec![];
    };
    let mut holders = Vec::new();
    for p in procs.filter_map(Result::ok) {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.filter_map(Result::ok).any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| {
                inodes
                    .iter()
                    .any(|i| target.as_os_str() == format!("socket:[{i}]").as_str())
            })
        });
        if holds {
            let comm = fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            holders.push(format!("pid {pid} ({})", comm.trim()));
        }
    }
    holders
}

/// Inodes of the sockets in a `/proc/net/udp` table whose local port is `port`.
fn socket_inodes(table: &str, port: u16) -> Vec<String> {
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local = cols.get(1)?;
            let inode = cols.get(9)?;
            (local.ends_with(&port) && *inode != "0").then(|| inode.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_inode_of_a_port_in_a_real_table_line() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            \x20 775: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2719823 2 0000000000000000 0\n\
            \x20 776: 0100007F:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2719824 2 0000000000000000 0\n";
        assert_eq!(socket_inodes(table, 67), ["2719823"]);
        assert!(socket_inodes(table, 69).is_empty());
    }

    #[test]
    fn names_this_process_for_a_socket_it_holds() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let me = format!("pid {} (", std::process::id());
        assert!(
            udp_port_holders(port).iter().any(|h| h.starts_with(&me)),
            "{:?}",
            udp_port_holders(port)
        );
    }
}
