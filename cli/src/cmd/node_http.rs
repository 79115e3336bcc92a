//! Asking a running node over its HTTP port (`netboot status`, `netboot clients`): which
//! URL, and a JSON GET with errors that say what to check.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use netboot_node::config::{Config, DEFAULT_CONFIG_PATH};
use serde::de::DeserializeOwned;

/// Which node to ask.
#[derive(Args)]
pub struct NodeAddr {
    /// The node's HTTP URL. Default: the http.listen address of --config (a wildcard
    /// address is asked on loopback), else http://127.0.0.1:80.
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// Node config file, to find its HTTP address. Default: /etc/netboot/netboot.toml when
    /// it exists.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Plain HTTP: a node serves no TLS (put a reverse proxy in front for that).
pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

impl NodeAddr {
    /// The URL to ask: --node, else the config's HTTP listen address.
    pub fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.node {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let path = self.config.clone().or_else(|| {
            std::path::Path::new(DEFAULT_CONFIG_PATH)
                .exists()
                .then(|| PathBuf::from(DEFAULT_CONFIG_PATH))
        });
        let Some(path) = path else {
            return Ok("http://127.0.0.1:80".into());
        };
        let config = Config::load(&path)?;
        let mut addr = config.http.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Ok(format!("http://{addr}"))
    }
}

/// `GET <url><path>`: the body as sent, and parsed as `what` (named in the error).
pub async fn get_json<T: DeserializeOwned>(
    client: &HttpClient,
    url: &str,
    path: &str,
    what: &str,
) -> anyhow::Result<(String, T)> {
    let uri: hyper::Uri = format!("{url}{path}")
        .parse()
        .with_context(|| format!("--node `{url}` is not an http:// URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--node `{url}`: only http:// is served by a node");
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri.clone()))
        .await
        .with_context(|| format!("{uri}: no answer within 10 s"))?
        .with_context(|| format!("cannot reach the node at {uri} (is `netboot node` running there? --node sets the URL)"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .with_context(|| format!("{uri}: reading the answer"))?
        .to_bytes();
    if !status.is_success() {
        bail!("{uri}: {status}: {}", String::from_utf8_lossy(&body).trim());
    }
    let text = String::from_utf8(body.to_vec()).with_context(|| format!("{uri}: not UTF-8"))?;
    let parsed = serde_json::from_str(&text)
        .with_context(|| format!("{uri}: not {what} (an older or newer node?)"))?;
    Ok((text, parsed))
}
