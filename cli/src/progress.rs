//! Progress display: bars on a terminal, a line per file otherwise (logs, CI, pipes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use netboot_node::store::StageProgress;

pub struct FileProgress {
    bar: Option<ProgressBar>,
    label: String,
    announced: bool,
}

impl FileProgress {
    pub fn new(label: &str) -> Self {
        Self {
            bar: None,
            label: label.to_string(),
            announced: false,
        }
    }

    pub fn update(&mut self, p: StageProgress) {
        let (phase, done, size) = match p {
            StageProgress::Copying { done, size } => ("copying", done, size),
            StageProgress::Hashing { done, size } => ("hashing", done, size),
        };
        if !self.announced {
            self.announced = true;
            eprintln!("  {}: {} ({})", self.label, phase, human_bytes(size));
            if std::io::stderr().is_terminal() {
                let bar = ProgressBar::new(size);
                if let Ok(style) = ProgressStyle::with_template(
                    "    {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                ) {
                    bar.set_style(style);
                }
                self.bar = Some(bar);
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_length(size);
            bar.set_position(done);
            bar.set_message(phase);
        }
    }

    /// Bytes moved to a remote node so far.
    pub fn transferred(&mut self, done: u64, total: u64) {
        if !self.announced {
            self.announced = true;
            eprintln!("  {}: {}", self.label, human_bytes(total));
            if std::io::stderr().is_terminal() {
                let bar = ProgressBar::new(total);
                if let Ok(style) = ProgressStyle::with_template(
                    "    {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
                ) {
                    bar.set_style(style);
                }
                self.bar = Some(bar);
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if done >= total {
                bar.finish_and_clear();
            }
        }
    }

    pub fn finish(&mut self, hash: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("  {}: done, blake3 {hash}", self.label);
    }
}

pub use netboot_node::status::human_bytes;
