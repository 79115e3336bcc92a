//! A node's `/metrics`, fetched with curl, checked by `promtool check metrics` (Debian's
//! `prometheus` package) and parsed with the `prometheus-parse` crate, so tests compare
//! counters before and after something happened.

use std::{
    io::Write,
    process::{Command, Stdio},
};

/// One scrape of `/metrics`.
pub struct Metrics {
    pub text: String,
    samples: prometheus_parse::Scrape,
}

impl Metrics {
    /// Parses the text format; panics (naming the text) when it does not parse.
    pub fn parse(text: &str) -> Self {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let samples = prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
        Self {
            text: text.to_string(),
            samples,
        }
    }

    /// `GET url` (a node's `/metrics`), which must succeed.
    pub fn fetch(url: &str) -> Self {
        let out = Command::new("curl")
            .args(["-sSf", "--max-time", "10", url])
            .output()
            .expect("curl is needed: apt-get install curl");
        assert!(
            out.status.success(),
            "GET {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// The sum of the samples of `name` whose labels include `labels` (0 when there are none:
    /// a counter never bumped is not listed).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// Whether any sample of `name` has exactly these labels among its own.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples
            .samples
            .iter()
            .any(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }

    /// `promtool check metrics` accepts the text (format and naming conventions).
    pub fn promtool_check(&self) {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool is needed: apt-get install prometheus (tests/install-deps.sh)");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(self.text.as_bytes())
            .expect("write to promtool");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics refused /metrics:\n{}{}\n--- metrics ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.text
        );
    }
}
