//! The HTTP exchange both contracts share: POST JSON, read a bounded answer, and turn transport
//! failures into [`SkillError`]s that name the server but never its credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use kefu_plugin::SkillError;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Serialize;

/// The most of an answer that is read; a larger answer is a back-end failure, not a memory
/// spike in the runtime.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why a client could not be built.
pub(crate) enum BuildError {
    /// The URL or a header is unusable.
    Config(String),
    /// The TLS set-up failed.
    Client(String),
}

/// One remote endpoint.
pub(crate) struct Client {
    http: reqwest::Client,
    url: Url,
    /// The URL without credentials, for errors and logs.
    shown: String,
}

/// A status and the body that came with it.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// The URL without user name and password, for display; the input as-is if it does not parse.
pub(crate) fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

impl Client {
    pub(crate) fn new(
        url: &str,
        timeout_ms: u64,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, BuildError> {
        let parsed = Url::parse(url)
            .map_err(|e| BuildError::Config(format!("`{}` is not a URL: {e}", redact_url(url))))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(BuildError::Config(format!(
                "the URL must be http or https, not `{}`",
                parsed.scheme()
            )));
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BuildError::Config(format!("`{name}` is not a header name")))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                BuildError::Config(format!("the value of header `{name}` is not valid"))
            })?;
            // Keeps it out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            map.insert(header, value);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .default_headers(map)
            .user_agent(concat!("kefu-skill-http/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Client(e.without_url().to_string()))?;
        Ok(Self {
            http,
            shown: redact_url(parsed.as_str()),
            url: parsed,
        })
    }

    /// The endpoint, without credentials.
    pub(crate) fn url(&self) -> &str {
        &self.shown
    }

    /// POSTs `body` as JSON and reads the answer, up to [`MAX_ANSWER_BYTES`].
    pub(crate) async fn post(&self, body: &impl Serialize) -> Result<Answer, SkillError> {
        let payload = serde_json::to_vec(body)
            .map_err(|e| SkillError::Backend(format!("the request does not serialise: {e}")))?;
        let mut resp = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(payload)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(SkillError::Backend(format!(
                    "{} answered more than {MAX_ANSWER_BYTES} bytes",
                    self.shown
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }

    fn transport(&self, e: reqwest::Error) -> SkillError {
        let what = if e.is_timeout() {
            "did not answer in time".to_owned()
        } else if e.is_connect() {
            "refused the connection or is unreachable".to_owned()
        } else {
            format!("failed: {}", e.without_url())
        };
        SkillError::Backend(format!("{} {what}", self.shown))
    }

    /// The error for a status that means our credentials were refused.
    pub(crate) fn refused(&self, status: StatusCode) -> SkillError {
        SkillError::Config(format!(
            "{} refused our credentials (HTTP {})",
            self.shown,
            status.as_u16()
        ))
    }
}

/// The start of a body, for error messages (never the whole thing).
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}
