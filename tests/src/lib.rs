//! Helpers for end-to-end tests: find the `netboot` binary, run it, make test content.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The `netboot` binary under test: `$NETBOOT_BIN`, or the one cargo built next to this test.
pub fn netboot_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NETBOOT_BIN") {
        return PathBuf::from(path);
    }
    // Test executables live in target/<profile>/deps/; the binary in target/<profile>/.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("netboot");
    assert!(
        bin.exists(),
        "the netboot binary is not built at {}: run `cargo build -p netboot-cli` first (the README's test command does), or set NETBOOT_BIN",
        bin.display()
    );
    bin
}

pub fn netboot() -> Command {
    let mut cmd = Command::new(netboot_bin());
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs and returns output; panics with both streams if the exit status is not `expect_ok`.
pub fn run(cmd: &mut Command, expect_ok: bool) -> Output {
    let out = cmd.output().expect("spawn netboot");
    if out.status.success() != expect_ok {
        panic!(
            "{:?} exited {:?}, expected {}\nstdout:\n{}\nstderr:\n{}",
            cmd,
            out.status,
            if expect_ok { "success" } else { "failure" },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic pseudo-random content (xorshift), cheap to make in any size.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A publisher key made with `netboot keygen`; returns (key file, public key text).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = run(netboot().arg("keygen").arg("--out").arg(&path), true);
    (path, stdout(&out).trim().to_string())
}
