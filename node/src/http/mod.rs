//! The HTTP server: kernels, initrds, root filesystems, ISOs and the generated iPXE scripts.
//! A listener ([`serve`]) plus a handler ([`handler::HttpHandler`]) that asks the store.

mod completion;
pub mod file;
pub mod handler;
pub mod limits;
mod listener;
pub mod route;

pub use handler::{HttpHandler, Serves};
pub use limits::HttpLimits;
pub use listener::serve;
