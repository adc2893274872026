//! The measured load's HTTP client: one HTTP/1.1 connection per task, on
//! hyper directly.
//!
//! The load generator shares the 2-core machine with the server it
//! measures, so every microsecond it spends is one the server does not get.
//! A connection here is a bare hyper `SendRequest` over a `TcpStream` with
//! `TCP_NODELAY`: no pool to look up, no redirect or cookie logic, no body
//! decoding beyond counting bytes. Each load task owns one connection and
//! sends one request at a time on it (as wrk2 does), so the number of
//! connections bounds the requests in flight. `http://` only: benchmarks
//! run against local servers (put a TLS terminator aside when needed).

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the server under test listens.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `host:port` for the `Host` header.
    pub authority: HeaderValue,
    /// The URL's path without a trailing slash (usually empty), prefixed
    /// to every request path.
    pub base_path: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
        if parsed.scheme() != "http" {
            bail!("{url}: only http:// targets are supported (run a TLS terminator aside)");
        }
        let host = parsed
            .host_str()
            .with_context(|| format!("{url}: no host"))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let authority = HeaderValue::from_str(&format!("{host}:{port}"))
            .with_context(|| format!("{url}: bad host"))?;
        Ok(Self {
            host,
            port,
            authority,
            base_path: parsed.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// One open connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(target: &Target) -> std::io::Result<Self> {
        let host = target.host.trim_start_matches('[').trim_end_matches(']');
        let stream = TcpStream::connect((host, target.port)).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            // Ends when the server closes or the sender is dropped.
            let _ = conn.await;
        });
        Ok(Self { sender })
    }

    /// Sends `req` and reads the whole response; returns its status and
    /// body size.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, usize), hyper::Error> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body.len()))
    }

    /// Sends `req` and reads the whole response; returns its status and
    /// body.
    pub async fn send_collect(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), hyper::Error> {
        let resp = self.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Sends `req` and returns the response as it starts: its body is read
    /// by the caller as it comes (a stream of server-sent events).
    pub async fn request(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        self.sender.ready().await?;
        self.sender.send_request(req).await
    }
}
