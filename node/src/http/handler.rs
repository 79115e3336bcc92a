//! HTTP routes. Every file answer comes from a servable (verified, trusted, unexpired)
//! release, checked again at serve time by [`crate::integrity`].
//!
//! | route | answer |
//! |---|---|
//! | `/` | the status page (HTML, see [`crate::status::render`]) |
//! | `/status.json` | the same snapshot as JSON ([`crate::status::NodeStatus`]) |
//! | `/fleet/status.json` | the fleet's view ([`crate::fleet::FleetView`]) |
//! | `POST /boot/done?mac=…` | a one-shot boot's image says it is done ([`crate::clients::once`]) |
//! | `/fleet/clients.json` | every site's machines, asked of the connected peers ([`crate::clients::fleet::FleetClientsView`]) |
//! | `/boot.ipxe` | a script that chains back with `?mac=…&ip=…` (HTTP carries no MAC) |
//! | `/boot.ipxe?mac=…&ip=…` | the machine's image, the default image, or a menu |
//! | `/boot/<name>.ipxe` | a script booting the newest servable `<name>` |
//! | `/r/<name>/<version>/<path>` | a file of one exact release (what scripts use) |
//! | `/images/<name>/<path>` | a file of the newest servable release of `<name>` |
//! | `/blobs/<blake3 hex>` | a file by content hash |
//! | `/first-stage/<path>` | iPXE/PXELINUX programs (UEFI HTTP boot) |
//! | `/metrics` | Prometheus metrics (unless `[metrics] listen` moves them to their own port) |
//! | `/grub/grub.cfg`, `/grub/grub.cfg-01-<mac>` (and the other `boot::grub::PREFIXES`) | generated GRUB configs |

use std::{
    net::Ipv4Addr,
    net::SocketAddr,
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::{Instant, SystemTime},
};

use hyper::{body::Incoming, Method, Request, Response, StatusCode};
use netboot_proto::{ImageName, ImagePath};

use super::{
    completion::CompletionLog,
    file::{self, full, Body, FileSource},
    route::{BootQuery, Route},
};
use crate::{
    boot::{
        grub, ipxe, pxelinux, release_file, resolve, BootChoice, BootPolicy, FirstStage,
        LivePolicy, Loader,
    },
    clients::{step_of_file, ClientLog, ImageRef, Stage, Step, Via},
    dhcp::MacAddr,
    fleet::{
        readthrough::{PendingFile, ReadThrough},
        FleetStatus,
    },
    integrity::VerifiedFiles,
    metrics::{self, scrape::FleetNumbers, Metrics, Scraped, TransferResult},
    status::{self, StatusSource},
    store::Store,
};

/// What a listener answers: the boot routes, `/metrics`, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    BootAndMetrics,
    /// `[metrics] listen` is set: `/metrics` is served there instead.
    BootOnly,
    /// The `[metrics] listen` address.
    MetricsOnly,
}

#[derive(Debug, Clone)]
pub struct HttpHandler {
    pub store: Arc<Store>,
    pub base_url: String,
    pub policy: LivePolicy,
    /// Where generated GRUB configs load kernels from.
    pub grub_files: grub::GrubFiles,
    pub first_stage: FirstStage,
    /// PXELINUX's loader file name (`lpxelinux.0`).
    pub pxelinux_file: String,
    pub verified: Arc<VerifiedFiles>,
    /// Files of releases still being fetched, served as their verified bytes arrive.
    pub read_through: Option<ReadThrough>,
    /// `/fleet/status.json`, when the node is in a fleet.
    pub fleet_status: Option<FleetStatus>,
    /// `/` and `/status.json`.
    pub status: StatusSource,
    /// Set by the listener on shutdown, so cut transfers are logged as the node's doing.
    pub stopping: Arc<AtomicBool>,
    /// Told which client got which boot file.
    pub clients: ClientLog,
    pub metrics: Arc<Metrics>,
    pub serves: Serves,
}

fn config_step(image: Option<ImageRef>) -> Option<Step> {
    Some(Step {
        stage: Stage::Config,
        image,
    })
}

/// What a request resolved to, before building the response.
enum Answer {
    /// Text, what it is for the log, and the boot step it is for the client record.
    Script(String, String, Option<Step>),
    File {
        path: PathBuf,
        size: u64,
        hash: Option<blake3::Hash>,
        what: String,
        step: Option<Step>,
    },
    /// A file of a release being fetched (read-through).
    Pending(Box<PendingFile>),
    Error(StatusCode, String),
}

/// Adds the completion line (bytes sent, time, or how far a client got before it left) to a
/// file answer that has a body.
fn log_completion(
    resp: Response<Body>,
    method: &Method,
    label: String,
    stopping: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
) -> Response<Body> {
    let len = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let has_body = matches!(resp.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT);
    if method != Method::GET || !has_body || len == 0 {
        return resp;
    }
    resp.map(|body| CompletionLog::wrap(body, label, len, stopping.clone(), metrics.clone()))
}

impl HttpHandler {
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let route = Route::parse(&path);
        if route == Route::BootDone {
            return self.boot_done(&method, &query, peer);
        }
        if method != Method::GET && method != Method::HEAD {
            tracing::info!("http {peer} {method} {path}: 405 (read-only server)");
            return full(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "netboot serves GET and HEAD only\n",
            );
        }
        if route == Route::Metrics && self.serves != Serves::BootOnly {
            return full(
                StatusCode::OK,
                metrics::CONTENT_TYPE,
                self.metrics_text().await,
            );
        }
        if self.serves == Serves::MetricsOnly {
            return full(StatusCode::NOT_FOUND, "text/plain", "only /metrics here\n");
        }
        if let Some(resp) = self.status_answer(&route).await {
            tracing::debug!("http {peer} {method} {path}: {}", resp.status().as_u16());
            return resp;
        }
        let answer = self.resolve(route, &path, &query);
        let report = |step: Option<Step>| {
            let now = SystemTime::now();
            // iPXE's chain-back names the machine behind this address.
            if let Some(mac) = BootQuery::parse(&query).mac {
                self.clients.identified(mac, peer.ip(), now);
            }
            if let Some(step) = step {
                let fetch = step.fetch(path.as_str(), Via::Http);
                self.clients.fetched(peer.ip(), fetch, now);
            }
        };
        let response = match answer {
            Answer::Pending(pending) => {
                report(step_of_file(
                    pending.release.release(),
                    pending.file.path.as_str(),
                ));
                let resp = self.serve_pending(&method, req.headers(), &pending);
                let resp = log_completion(
                    resp,
                    &method,
                    format!("http {peer} {method} {path}"),
                    &self.stopping,
                    &self.metrics,
                );
                tracing::info!(
                    "http {peer} {method} {path}: {} {} v{} {} ({} bytes) READ-THROUGH: the release is still being fetched; streaming verified bytes as they arrive",
                    resp.status().as_u16(),
                    pending.release.name,
                    pending.release.version,
                    pending.file.path,
                    pending.file.size
                );
                resp
            }
            Answer::Script(text, what, step) => {
                tracing::info!("http {peer} {method} {path}?{query}: 200 script: {what}");
                report(step);
                full(StatusCode::OK, "text/plain; charset=utf-8", text)
            }
            Answer::Error(status, why) => {
                tracing::warn!("http {peer} {method} {path}: {} {why}", status.as_u16());
                self.metrics.transfer("http", TransferResult::Refused, 0);
                full(status, "text/plain; charset=utf-8", format!("{why}\n"))
            }
            Answer::File {
                path: file,
                size,
                hash,
                what,
                step,
            } => {
                let source = match hash {
                    Some(expected) => {
                        let verified = self.verified.clone();
                        let checked = file.clone();
                        let result = tokio::task::spawn_blocking(move || {
                            verified.open(&checked, &expected, size)
                        })
                        .await;
                        match result {
                            Ok(Ok(opened)) => FileSource::Verified(opened),
                            Ok(Err(e)) => {
                                tracing::error!("http {peer} {method} {path}: 500 REFUSED, {what} failed its integrity check: {e}");
                                self.metrics
                                    .transfer("http", TransferResult::IntegrityRefused, 0);
                                return full(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "text/plain",
                                    "file failed its integrity check; not served\n",
                                );
                            }
                            Err(e) => {
                                return full(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "text/plain",
                                    format!("integrity check failed: {e}\n"),
                                )
                            }
                        }
                    }
                    None => FileSource::Plain(file),
                };
                report(step);
                let resp = file::serve(
                    &method,
                    req.headers(),
                    source,
                    size,
                    hash,
                    content_type(&path),
                )
                .await;
                let resp = log_completion(
                    resp,
                    &method,
                    format!("http {peer} {method} {path}"),
                    &self.stopping,
                    &self.metrics,
                );
                tracing::info!(
                    "http {peer} {method} {path}: {} {what} ({size} bytes{}) in {} ms",
                    resp.status().as_u16(),
                    req.headers()
                        .get(hyper::header::RANGE)
                        .and_then(|v| v.to_str().ok())
                        .map(|r| format!(", range {r}"))
                        .unwrap_or_default(),
                    started.elapsed().as_millis()
                );
                resp
            }
        };
        response
    }

    /// `POST /boot/done?mac=M`: the image a one-shot rule booted says it is done (an
    /// installer's last step), so the machine's next boot gets local disk even if the record
    /// missed its kernel or initrd. Only a one-shot pending for that MAC is marked.
    fn boot_done(&self, method: &Method, query: &str, peer: SocketAddr) -> Response<Body> {
        let text = |status: StatusCode, body: String| {
            tracing::info!(
                "http {peer} {method} /boot/done?{query}: {}: {}",
                status.as_u16(),
                body.trim_end()
            );
            full(status, "text/plain", body)
        };
        if self.serves == Serves::MetricsOnly {
            return full(StatusCode::NOT_FOUND, "text/plain", "only /metrics here\n");
        }
        if method != Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "/boot/done takes POST (curl -X POST '<node>/boot/done?mac=<MAC>')\n".into(),
            );
        }
        let Some(mac) = BootQuery::parse(query).mac else {
            return text(
                StatusCode::BAD_REQUEST,
                "/boot/done needs mac=<the machine's MAC>, e.g. ?mac=52:54:00:12:34:56\n".into(),
            );
        };
        match self.clients.once_called_back(mac, SystemTime::now()) {
            Ok(done) => text(
                StatusCode::OK,
                done.iter()
                    .map(|k| format!("done: {} of policy v{}\n", k.rule, k.policy_version))
                    .collect(),
            ),
            Err(e) => text(StatusCode::CONFLICT, format!("{e}\n")),
        }
    }

    /// The status routes (`/`, `/status.json`, `/fleet/status.json`); `None` for the others.
    async fn status_answer(&self, route: &Route<'_>) -> Option<Response<Body>> {
        let json = |value: Result<String, serde_json::Error>| match value {
            Ok(text) => full(StatusCode::OK, "application/json", text),
            Err(e) => full(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("status: {e}\n"),
            ),
        };
        let resp = match route {
            Route::StatusPage => {
                let page = status::render::page(&self.status.snapshot().await);
                let mut resp = full(StatusCode::OK, "text/html; charset=utf-8", page);
                // The page has no script: forbid any, so an escaping mistake cannot run one.
                resp.headers_mut().insert(
                    hyper::header::CONTENT_SECURITY_POLICY,
                    hyper::header::HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                    ),
                );
                resp
            }
            Route::StatusJson => json(serde_json::to_string(&self.status.snapshot().await)),
            Route::ClientsJson => json(serde_json::to_string(
                &self.clients.view(std::time::SystemTime::now()),
            )),
            Route::FleetStatus | Route::FleetClients => match &self.fleet_status {
                Some(status) if *route == Route::FleetStatus => {
                    json(serde_json::to_string(&status.view().await))
                }
                Some(status) => json(serde_json::to_string(&status.machines().await)),
                None => full(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "this node has no [fleet] section\n",
                ),
            },
            _ => return None,
        };
        Some(resp)
    }

    /// `/metrics`: the counters, and what the store, the fleet and the client record hold now.
    pub async fn metrics_text(&self) -> String {
        let mut scraped = Scraped::of_store(&self.store);
        if let Some(status) = &self.fleet_status {
            scraped.fleet = Some(FleetNumbers::new(&status.view().await, status.sync_lag()));
        }
        scraped.clients_known = self.clients.machine_count() as u64;
        self.metrics.render(&scraped)
    }

    fn resolve(&self, route: Route<'_>, path: &str, query: &str) -> Answer {
        let policy = self.policy.current();
        let not_found = |why: String| Answer::Error(StatusCode::NOT_FOUND, why);
        match route {
            Route::BootScript => {
                let q = BootQuery::parse(query);
                let Some(client) = q.mac else {
                    if q.mac_unreadable {
                        // Answering the identify script again would loop the client forever.
                        return Answer::Script(
                            ipxe::nothing_script(
                                "the node could not read this machine's MAC address",
                            ),
                            format!("unreadable MAC in query `{query}`"),
                            None,
                        );
                    }
                    return Answer::Script(
                        ipxe::identify_script(&self.base_url),
                        "identify client".into(),
                        None,
                    );
                };
                if q.bios && policy.bios_loader_for(Some(&client)) == Loader::Pxelinux {
                    return Answer::Script(
                        pxelinux::handoff_script(&self.base_url, &client, &self.pxelinux_file),
                        format!("client {client} hands over to PXELINUX"),
                        None,
                    );
                }
                let decision = resolve::decide(&policy, q.mac.as_ref(), q.policy_arch);
                match decision.choice {
                    BootChoice::Image { name, version, why } => {
                        self.boot_image(&name, version, q.mac.as_ref(), q.ip, &why)
                    }
                    BootChoice::Menu { why } => self.menu(&policy, q.mac.as_ref(), q.ip, &why),
                    BootChoice::Local { why } => Answer::Script(
                        ipxe::local_script(&why),
                        format!("client {client} boots from local disk ({why})"),
                        config_step(None),
                    ),
                }
            }
            Route::BootImage(name) => {
                let q = BootQuery::parse(query);
                self.boot_image(&name, None, q.mac.as_ref(), q.ip, "chosen from the menu")
            }
            Route::PxelinuxConfig(name) => {
                match pxelinux::generated_config(&self.store, &policy, &self.base_url, name) {
                    Some((text, what)) => Answer::Script(
                        text,
                        format!("pxelinux.cfg/{name}: {what}"),
                        config_step(None),
                    ),
                    None => Answer::Error(
                        StatusCode::NOT_FOUND,
                        format!("no pxelinux.cfg/{name} (PXELINUX probes; expected)"),
                    ),
                }
            }
            Route::PxelinuxFile(rest) => self.first_stage_file(rest, "PXELINUX file"),
            Route::Grub(request) => match grub::generated_config(
                &self.store,
                &policy,
                &self.base_url,
                &self.grub_files,
                request,
            ) {
                Some((text, what)) => {
                    Answer::Script(text, format!("GRUB config: {what}"), config_step(None))
                }
                None => not_found(format!("no {path} (GRUB probes it; expected)")),
            },
            Route::Release {
                name,
                version,
                file,
            } => match self.store.servable_version(&name, version) {
                Some(r) => self.release_file(&r, file),
                None => self
                    .pending_file(&name, Some(version), file)
                    .unwrap_or_else(|| {
                        not_found(format!(
                            "{name} v{version} is not servable here (unknown, dropped or expired)"
                        ))
                    }),
            },
            Route::Image { name, file } => match self.store.servable(&name) {
                Some(r) => self.release_file(&r, file),
                None => self
                    .pending_file(&name, None, file)
                    .unwrap_or_else(|| not_found(format!("no servable release of {name}"))),
            },
            Route::Blob(hash) => {
                // Only bytes some servable release still vouches for: an expired release
                // keeps its blobs on disk until GC, but must not be served by hash either.
                for r in self.store.servable_releases().iter().rev() {
                    if let Some(f) = r.verified.files.iter().find(|f| f.hash == hash) {
                        return Answer::File {
                            path: self.store.blob_path(&hash),
                            size: f.size,
                            hash: Some(hash),
                            what: format!("blob of {} v{}", r.verified.name, r.verified.version),
                            step: None,
                        };
                    }
                }
                not_found(format!("no servable release holds {}", hash.to_hex()))
            }
            Route::FirstStage(rest) => self.first_stage_file(rest, "first stage"),
            Route::NotFound(why) => not_found(why),
            Route::StatusPage
            | Route::StatusJson
            | Route::ClientsJson
            | Route::FleetStatus
            | Route::FleetClients => not_found(format!("{path} is answered by status_answer")),
            Route::BootDone => not_found("/boot/done is answered by boot_done".into()),
            Route::Metrics => not_found("/metrics: served on [metrics] listen".into()),
        }
    }

    /// A first-stage program (iPXE, PXELINUX and its modules), `what` naming it in the log.
    fn first_stage_file(&self, name: &str, what: &str) -> Answer {
        match self.first_stage.lookup(&self.store, name) {
            Ok(f) => Answer::File {
                path: f.path,
                size: f.size,
                hash: f.hash,
                what: format!("{what} from {}", f.origin),
                step: f.step,
            },
            Err(e) => Answer::Error(StatusCode::NOT_FOUND, e.to_string()),
        }
    }

    fn pending_file(&self, name: &ImageName, version: Option<u64>, file: &str) -> Option<Answer> {
        let path = file.parse::<ImagePath>().ok()?;
        let pending = self.read_through.as_ref()?.lookup(name, version, &path)?;
        Some(Answer::Pending(Box::new(pending)))
    }

    fn serve_pending(
        &self,
        method: &Method,
        headers: &hyper::HeaderMap,
        pending: &PendingFile,
    ) -> Response<Body> {
        let Some(read_through) = &self.read_through else {
            return full(StatusCode::NOT_FOUND, "text/plain", "no fleet\n");
        };
        let size = pending.file.size;
        let range_header = headers
            .get(hyper::header::RANGE)
            .and_then(|v| v.to_str().ok());
        let (status, range) = match file::parse_range(range_header, size) {
            file::RangeRequest::Whole => (StatusCode::OK, 0..size),
            file::RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, r.start..r.end),
            file::RangeRequest::Unsatisfiable => {
                return full(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "text/plain",
                    "range not satisfiable\n",
                )
            }
        };
        let len = range.end - range.start;
        let body = if method == Method::HEAD || len == 0 {
            file::empty_body()
        } else {
            file::stream_body(read_through.stream(&pending.file, range.clone()))
        };
        file::with_headers(
            body,
            status,
            len,
            size,
            range,
            Some(pending.file.hash),
            content_type(pending.file.path.as_str()),
        )
    }

    fn release_file(&self, stored: &crate::store::StoredRelease, file: &str) -> Answer {
        match release_file::release_file(&self.store, stored, file) {
            Ok(f) => Answer::File {
                path: f.path,
                size: f.size,
                hash: f.hash,
                what: f.origin,
                step: f.step,
            },
            Err(e) => Answer::Error(StatusCode::NOT_FOUND, e.to_string()),
        }
    }

    fn boot_image(
        &self,
        name: &ImageName,
        version: Option<u64>,
        mac: Option<&MacAddr>,
        ip: Option<Ipv4Addr>,
        why: &str,
    ) -> Answer {
        match resolve::servable(&self.store, name, version) {
            Some(r) => Answer::Script(
                ipxe::boot_script(&self.base_url, &r.verified, mac, ip),
                format!(
                    "client {} boots {} v{} ({why})",
                    mac.map(ToString::to_string).unwrap_or_else(|| "?".into()),
                    name,
                    r.verified.version
                ),
                config_step(Some(ImageRef::new(name, r.verified.version))),
            ),
            None => {
                let image = resolve::image_label(name, version);
                Answer::Script(
                    ipxe::nothing_script(&format!("image {image} ({why}) is not on this node")),
                    format!(
                        "client {} wants {image} ({why}), which is not servable here",
                        mac.map(ToString::to_string).unwrap_or_else(|| "?".into())
                    ),
                    None,
                )
            }
        }
    }

    fn menu(
        &self,
        policy: &BootPolicy,
        mac: Option<&MacAddr>,
        ip: Option<Ipv4Addr>,
        why: &str,
    ) -> Answer {
        let releases: Vec<_> = self
            .store
            .servable_latest()
            .into_iter()
            .filter(|r| r.verified.boot.is_some())
            .collect();
        let refs: Vec<&netboot_proto::Release> =
            releases.iter().map(|r| r.verified.release()).collect();
        let who = mac.map(ToString::to_string).unwrap_or_else(|| "?".into());
        if refs.is_empty() {
            return Answer::Script(
                ipxe::nothing_script("no bootable images on this node"),
                format!("client {who}: no images for a menu"),
                None,
            );
        }
        Answer::Script(
            ipxe::menu_script(&self.base_url, &refs, policy.menu_timeout_secs, mac, ip),
            format!(
                "client {who} gets the menu of {} images ({why})",
                refs.len()
            ),
            config_step(None),
        )
    }
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".iso") {
        "application/x-iso9660-image"
    } else if path.ends_with(".efi") {
        "application/efi"
    } else {
        "application/octet-stream"
    }
}
