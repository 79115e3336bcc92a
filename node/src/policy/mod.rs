//! Boot policies on this side of the wire: reading `policy.toml` and signed policy files,
//! holding the newest admitted policy (`held`), and telling a policy about a client in its
//! own terms. The boot decision that applies it is `boot::policy`.

mod client;
mod file;
pub mod held;

pub use client::{policy_arch, policy_mac};
pub use file::{load_signed, sign_source, PolicyFileError, SignOptions};
pub use held::{Held, HeldPolicy};
