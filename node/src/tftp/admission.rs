//! Who gets a transfer slot: the decision the listener asks for each new read request.
//! Pure; the listener (`super::server`) owns the transfer table and acts on the answer.
//!
//! A flood of read requests that are never acknowledged must not lock real PXE clients out.
//! One host gets at most `max_transfers_per_client` slots; a flood from many addresses (a
//! LAN attacker can use as many as it likes) fills `max_transfers`, and then a new request
//! takes the slot of the oldest transfer that has not heard a single ACK from its client.
//! A transfer that has made progress is never ended to make room: when every slot is
//! taken by one, the new request is refused.

use std::net::IpAddr;

/// One running transfer as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferView {
    /// Increases with each admitted request, so a lower id is an older transfer.
    pub id: u64,
    pub ip: IpAddr,
    /// The client has answered (ACK, or ERROR after the OACK) at least once.
    pub progressed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Admit,
    /// Admit, and end this transfer (never acknowledged, the oldest such) to make room.
    AdmitEnding(u64),
    Refuse(Limit),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    PerClient,
    Total,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::PerClient => "tftp.max_transfers_per_client",
            Limit::Total => "tftp.max_transfers",
        })
    }
}

/// Decides about a new request from `ip`, given the running transfers (those already
/// ended to make room are not in `running`).
pub(crate) fn admit(
    running: &[TransferView],
    ip: IpAddr,
    max_transfers: usize,
    max_per_client: usize,
) -> Admission {
    // A host over its share is refused rather than making room among its own transfers:
    // a real PXE client runs one at a time, so a host asking for more is flooding, and
    // refusing it keeps its earlier requests (perhaps a real one among them) alive.
    if running.iter().filter(|t| t.ip == ip).count() >= max_per_client.max(1) {
        return Admission::Refuse(Limit::PerClient);
    }
    if running.len() < max_transfers.max(1) {
        return Admission::Admit;
    }
    match running
        .iter()
        .filter(|t| !t.progressed)
        .min_by_key(|t| t.id)
    {
        Some(oldest) => Admission::AdmitEnding(oldest.id),
        None => Admission::Refuse(Limit::Total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let t = |id, ip, progressed| TransferView { id, ip, progressed };
        // max_transfers 4, max_per_client 2
        let cases: &[(&str, Vec<TransferView>, IpAddr, Admission)] = &[
            ("empty", vec![], a, Admission::Admit),
            ("room", vec![t(1, a, false)], a, Admission::Admit),
            (
                "client at its share: refused even with room",
                vec![t(1, a, false), t(2, a, true)],
                a,
                Admission::Refuse(Limit::PerClient),
            ),
            (
                "client at its share, table full: refused, nobody ended",
                vec![
                    t(1, a, false),
                    t(2, a, false),
                    t(3, b, false),
                    t(4, b, false),
                ],
                a,
                Admission::Refuse(Limit::PerClient),
            ),
            (
                "full: the oldest never-acknowledged transfer goes",
                vec![
                    t(7, a, false),
                    t(3, b, true),
                    t(5, b, false),
                    t(9, a, false),
                ],
                c,
                Admission::AdmitEnding(5),
            ),
            (
                "full: an older transfer that made progress is kept",
                vec![t(1, a, true), t(2, a, true), t(3, b, true), t(8, b, false)],
                c,
                Admission::AdmitEnding(8),
            ),
            (
                "full and every transfer made progress: refused",
                vec![t(1, a, true), t(2, a, true), t(3, b, true), t(4, b, true)],
                c,
                Admission::Refuse(Limit::Total),
            ),
        ];
        for (what, running, ip, want) in cases {
            assert_eq!(admit(running, *ip, 4, 2), *want, "{what}");
        }
    }
}
