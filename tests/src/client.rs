//! A minimal keep-alive HTTP/1 client over one TCP connection, for loopback load and crash tests.
//! Cheaper per request than a general client, so the load generator leaves the CPU to the server.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// One connection to a server.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

/// A response: status and body.
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// The body bytes.
    pub body: Bytes,
}

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Response> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Response { status, body })
    }

    /// POSTs a JSON value.
    pub async fn post_json(
        &mut self,
        path: &str,
        value: &serde_json::Value,
    ) -> anyhow::Result<Response> {
        self.request(
            Method::POST,
            path,
            Some(Bytes::from(serde_json::to_vec(value)?)),
        )
        .await
    }

    /// GETs a path.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request(Method::GET, path, None).await
    }
}
