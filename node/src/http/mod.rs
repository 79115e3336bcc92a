//! The HTTP server: kernels, initrds, root filesystems, ISOs and the generated iPXE scripts.
//! A listener ([`serve`]) plus a handler ([`handler::HttpHandler`]) that asks the store.

mod completion;
pub mod file;
pub mod handler;

use std::{net::SocketAddr, sync::Arc};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use handler::HttpHandler;

/// Serves until the listener fails. One task per connection; keep-alive on, because iPXE
/// fetches kernel and initrds over one connection.
pub async fn serve(listener: TcpListener, handler: Arc<HttpHandler>) -> std::io::Result<()> {
    loop {
        let (stream, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("http: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler.handle(req, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("http: connection from {peer}: {e}");
            }
        });
    }
}
