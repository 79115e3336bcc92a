//! Applies a reloaded config to a running node: the one owner of the running config and of
//! the boot policy the handlers read; fleet peers, members and the upload limit are handed to
//! the fleet.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use crate::{
    boot::BootPolicy,
    config::{reload, Config, ConfigError},
    fleet::FleetLive,
};

/// What a reload did, for the caller (the signal handler logs it; tests read it).
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The file has mistakes; the node keeps running on its old config.
    Refused(ConfigError),
    Done {
        applied: Vec<String>,
        needs_restart: Vec<String>,
    },
}

/// Cheap to clone: every clone reloads the same node.
#[derive(Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

struct Inner {
    /// The config the node runs on (live fields as last applied, the rest as at start).
    running: Mutex<Config>,
    policy: tokio::sync::watch::Sender<Arc<BootPolicy>>,
    fleet: Option<FleetLive>,
}

impl Reloader {
    pub(super) fn new(
        running: Config,
        policy: tokio::sync::watch::Sender<Arc<BootPolicy>>,
        fleet: Option<FleetLive>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                running: Mutex::new(running),
                policy,
                fleet,
            }),
        }
    }

    /// Re-reads `path`, checks it as a start would, and applies what can change live. Logs
    /// every mistake, every applied field and every field that waits for a restart.
    pub fn reload_file(&self, path: &Path) -> ReloadOutcome {
        let outcome = match Config::load_for_node(path) {
            Ok(wanted) => self.reload(wanted),
            Err(e) => ReloadOutcome::Refused(e),
        };
        match &outcome {
            ReloadOutcome::Refused(e) => {
                tracing::error!("config reload refused, still running on the previous config:\n{e}")
            }
            ReloadOutcome::Done {
                applied,
                needs_restart,
            } => {
                if applied.is_empty() && needs_restart.is_empty() {
                    tracing::info!("config reload: {} has no changes", path.display());
                }
                for field in applied {
                    tracing::info!("config reload: {field} applied");
                }
                for field in needs_restart {
                    tracing::warn!(
                        "config reload: {field} changed in {} but needs a restart; the old value stays in use",
                        path.display()
                    );
                }
            }
        }
        outcome
    }

    /// Applies `wanted`'s live fields; the boot policy changes in one step.
    pub fn reload(&self, wanted: Config) -> ReloadOutcome {
        // A poisoned lock means a panic mid-reload; the config in it is still whole (it is
        // replaced in one assignment), so carry on with it.
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let plan = reload::plan(&running, &wanted);
        if !plan.applied.is_empty() {
            self.inner
                .policy
                .send_replace(Arc::new(super::boot_policy(&plan.next)));
        }
        if let (Some(fleet), Some(old), Some(new)) = (
            &self.inner.fleet,
            running.fleet.as_ref(),
            plan.next.fleet.as_ref(),
        ) {
            if old.peers != new.peers || old.members != new.members {
                fleet.set_peers(&new.peers, &new.members);
            }
            if old.upload_limit != new.upload_limit {
                fleet.set_upload_limit(new.upload_limit);
            }
            if old.fetch != new.fetch {
                fleet.set_fetch(&new.fetch);
            }
        }
        *running = plan.next;
        ReloadOutcome::Done {
            applied: plan.applied,
            needs_restart: plan.needs_restart,
        }
    }
}
