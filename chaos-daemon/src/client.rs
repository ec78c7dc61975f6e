//! A small HTTP/1.1 client for the daemon's Unix socket (hyper), used by `chaosctl` and the tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (or no permission to connect).
    #[error("cannot reach chaos-daemon at {path}: {source}")]
    Unreachable {
        /// Socket path.
        path: PathBuf,
        /// Connect error.
        #[source]
        source: std::io::Error,
    },
    /// The connection broke or the answer was not HTTP.
    #[error("talking to chaos-daemon failed: {0}")]
    Protocol(String),
}

/// A client bound to one socket path. Each request uses a fresh connection.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
        }
    }

    /// Sends `method path` with an optional JSON body; returns (status, body).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Unreachable {
                    path: self.socket.clone(),
                    source,
                })?;
        let proto = |e: hyper::Error| ClientError::Protocol(e.to_string());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(proto)?;
        tokio::spawn(conn);
        let body = body.unwrap_or_default();
        let sent = body.len();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            // The daemon answers 413 and closes before reading an oversized body, so the
            // client sees its write fail rather than the answer: say what most likely happened.
            if sent > crate::server::MAX_BATCH_BODY {
                ClientError::Protocol(format!(
                    "{e} (the body is {sent} bytes; the daemon accepts at most {})",
                    crate::server::MAX_BATCH_BODY
                ))
            } else {
                proto(e)
            }
        })?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(proto)?.to_bytes();
        Ok((status, body))
    }
}
