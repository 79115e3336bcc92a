//! `/metrics` in the Prometheus text format (0.0.4), through `prometheus-client`.
//!
//! Two kinds of numbers: counters the servers bump as things happen ([`Metrics`], one shared
//! instance), and values read at scrape time from their owners (store, fleet status,
//! filesystem; see [`scrape`]). Every metric is described in `docs/operations.md`.

pub mod scrape;

use prometheus_client::{
    encoding::{prometheus_text, EncodeLabelSet},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

pub use scrape::Scraped;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DhcpLabels {
    mode: &'static str,
    arch: &'static str,
    client: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
    image: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    protocol: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: &'static str,
}

/// How a TFTP or HTTP file transfer ended, as counted (`result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferResult {
    /// Every byte went out.
    Complete,
    /// The client stopped early (went away, aborted, timed out), or asked only for the size.
    Incomplete,
    /// The node stopped it (shutting down).
    Stopped,
    /// A read or socket error on the node's side.
    Failed,
    /// The file changed on disk and was cut by the integrity check.
    IntegrityRefused,
    /// Not found, or not allowed.
    Refused,
}

impl TransferResult {
    fn label(self) -> &'static str {
        match self {
            TransferResult::Complete => "complete",
            TransferResult::Incomplete => "incomplete",
            TransferResult::Stopped => "stopped",
            TransferResult::Failed => "failed",
            TransferResult::IntegrityRefused => "integrity_refused",
            TransferResult::Refused => "refused",
        }
    }
}

/// The counters, shared by every server of the node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    dhcp: Family<DhcpLabels, Counter>,
    stages: Family<StageLabels, Counter>,
    transfers: Family<TransferLabels, Counter>,
    sent: Family<ProtocolLabels, Counter>,
    integrity: Family<ProtocolLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let dhcp = Family::default();
        registry.register(
            "netboot_dhcp_requests",
            "DHCP requests the node decided about, by its mode (proxy, server), the client's architecture (option 93), the client (firmware, ipxe, other) and the outcome (answered with boot information, address_only, nak, ignored_not_boot_client, ignored_not_ours: meant for another server, ignored: see the log for why)",
            dhcp.clone(),
        );
        let stages = Family::default();
        registry.register(
            "netboot_boot_stage_reached",
            "Boots that reached a stage (first_stage, config: the iPXE script or PXELINUX/GRUB config, kernel, initrd), by image name (empty where the image is not chosen yet); each boot counts once per stage",
            stages.clone(),
        );
        let transfers = Family::default();
        registry.register(
            "netboot_transfers",
            "TFTP and HTTP file transfers by protocol and how they ended (complete, incomplete: the client stopped early, stopped: the node shut down, failed: read or socket error here, integrity_refused, refused: not found or not allowed)",
            transfers.clone(),
        );
        let sent = Family::default();
        registry.register(
            "netboot_transfer_sent_bytes",
            "Bytes of files sent to boot clients, by protocol",
            sent.clone(),
        );
        let integrity = Family::default();
        registry.register(
            "netboot_integrity_refusals",
            "Files refused to a client because they no longer match their signed hash, by protocol",
            integrity.clone(),
        );
        Self {
            registry,
            dhcp,
            stages,
            transfers,
            sent,
            integrity,
        }
    }

    /// One DHCP decision.
    pub fn dhcp(
        &self,
        mode: &'static str,
        arch: &'static str,
        client: &'static str,
        outcome: &'static str,
    ) {
        self.dhcp
            .get_or_create(&DhcpLabels {
                mode,
                arch,
                client,
                outcome,
            })
            .inc();
    }

    /// A boot reached `stage` (of the boot of `image`, when known).
    pub fn stage(&self, stage: &'static str, image: Option<&str>) {
        self.stages
            .get_or_create(&StageLabels {
                stage,
                image: image.unwrap_or_default().to_string(),
            })
            .inc();
    }

    /// A transfer ended after `bytes` were sent.
    pub fn transfer(&self, protocol: &'static str, result: TransferResult, bytes: u64) {
        self.transfers
            .get_or_create(&TransferLabels {
                protocol,
                result: result.label(),
            })
            .inc();
        if bytes > 0 {
            self.sent
                .get_or_create(&ProtocolLabels { protocol })
                .inc_by(bytes);
        }
        if result == TransferResult::IntegrityRefused {
            self.integrity_refused(protocol);
        }
    }

    /// A file failed its integrity check before its first byte went out.
    pub fn integrity_refused(&self, protocol: &'static str) {
        self.integrity
            .get_or_create(&ProtocolLabels { protocol })
            .inc();
    }

    /// Every metric, the counters and the values read at this scrape.
    pub fn render(&self, scraped: &Scraped) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a metric that could not be encoded would
        // only be missing from this scrape.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_text::encode(&mut out, &scraped.registry());
        out
    }
}

#[cfg(test)]
mod tests;
