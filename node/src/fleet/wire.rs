//! Framed fleet messages on QUIC streams (format: [`netboot_proto::fleet`]).

use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream};
use netboot_proto::fleet::{self, Request, Response};
use serde::{de::DeserializeOwned, Serialize};

/// A peer that does not answer a control request in this time is treated as unreachable.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Connection(String),
    #[error("stream: {0}")]
    Stream(String),
    #[error("{0}")]
    Frame(#[from] fleet::FrameError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the peer closed the stream without an answer")]
    NoAnswer,
}

pub(crate) async fn write<T: Serialize>(
    send: &mut SendStream,
    message: &T,
) -> Result<(), WireError> {
    send.write_all(&fleet::encode(message))
        .await
        .map_err(|e| WireError::Stream(e.to_string()))
}

/// Reads one frame; `None` when the stream ended cleanly before a new frame.
pub(crate) async fn read<T: DeserializeOwned>(
    recv: &mut RecvStream,
) -> Result<Option<T>, WireError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match recv
            .read(&mut header[got..])
            .await
            .map_err(|e| WireError::Stream(e.to_string()))?
        {
            Some(n) => got += n,
            None if got == 0 => return Ok(None),
            None => {
                return Err(WireError::Stream(
                    "stream ended inside a frame header".into(),
                ))
            }
        }
    }
    let len = fleet::frame_len(header)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| WireError::Stream(e.to_string()))?;
    Ok(Some(fleet::decode(&body)?))
}

/// Sends one request on a new stream and returns the first response.
pub(crate) async fn request(conn: &Connection, request: &Request) -> Result<Response, WireError> {
    let exchange = async {
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| WireError::Connection(e.to_string()))?;
        write(&mut send, request).await?;
        send.finish()
            .map_err(|e| WireError::Stream(e.to_string()))?;
        read::<Response>(&mut recv)
            .await?
            .ok_or(WireError::NoAnswer)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| WireError::Timeout(REQUEST_TIMEOUT))?
}
