//! Minimal global tracing subscriber that keeps every event as one text line,
//! so tests can check the server's per-transfer log line. (No
//! tracing-subscriber dependency: the crate keeps its dependency list short.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

struct Capture {
    next_span: AtomicU64,
    echo: bool,
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!("{}", event.metadata().level()));
        event.record(&mut line);
        if self.echo {
            eprintln!("{}", line.0);
        }
        LINES.lock().unwrap_or_else(|p| p.into_inner()).push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Installs the capture once per test binary. `TFTP_TEST_LOG=1` also echoes lines.
pub fn install() {
    INSTALLED.get_or_init(|| {
        let echo = std::env::var_os("TFTP_TEST_LOG").is_some();
        let _ = tracing::subscriber::set_global_default(Capture {
            next_span: AtomicU64::new(0),
            echo,
        });
    });
}

/// Lines containing every one of `needles`.
pub fn lines_with(needles: &[&str]) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .cloned()
        .collect()
}

/// Waits until at least one line contains every needle (the server logs
/// after the client already has its data, so tests must not race it).
pub async fn wait_for(needles: &[&str], timeout: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = lines_with(needles);
        if !found.is_empty() || start.elapsed() > timeout {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn level_of(line: &str) -> Option<Level> {
    let word = line.split_whitespace().next()?;
    word.parse().ok()
}

/// Waits until at least `n` lines contain every needle; returns what it found.
pub async fn wait_count(needles: &[&str], n: usize, timeout: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = lines_with(needles);
        if found.len() >= n || start.elapsed() > timeout {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
