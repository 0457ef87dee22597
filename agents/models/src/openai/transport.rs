//! The HTTP transport installed under async-openai (its `middleware` escape hatch).
//!
//! It sends the request async-openai built, then:
//! - turns any non-2xx answer into [`HttpStatus`] (status, the provider's message, its
//!   `Retry-After`) instead of letting async-openai drop the headers;
//! - wraps a `text/event-stream` body so that a connection closing before `data: [DONE]` is an
//!   error, not an ordinary end of stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use bytes::Bytes;
use fenliu_agent::ModelError;
use futures::{Stream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::{Failure, shorten};

/// Longest error body we read: enough for any provider's JSON error, bounded against abuse.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A provider answered with an error status.
#[derive(Debug)]
pub(super) struct HttpStatus {
    status: u16,
    message: String,
    /// The provider's error code (`insufficient_quota`, `rate_limit_exceeded`, …).
    code: Option<String>,
    retry_after: Option<Duration>,
}

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.message)
    }
}

impl std::error::Error for HttpStatus {}

impl HttpStatus {
    pub(super) fn into_failure(self) -> Failure {
        // OpenAI answers 429 both for "slow down" and for "out of credit"; only the first passes.
        let permanent = matches!(self.code.as_deref(), Some("insufficient_quota"));
        let error = if self.status == 429 && !permanent {
            ModelError::RateLimited { retry_after: self.retry_after }
        } else {
            ModelError::Provider { status: self.status, message: self.message }
        };
        Failure { error, retry_after: self.retry_after }
    }
}

/// The tower service async-openai sends its requests through.
#[derive(Clone, Debug)]
pub(super) struct Transport {
    http: reqwest::Client,
}

impl Transport {
    pub(super) fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let http = self.http.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = http.execute(request).await?;
            let status = response.status();
            if !status.is_success() {
                let error = read_status_error(response).await;
                return Err(OpenAIError::Boxed(Box::new(error)));
            }
            if is_event_stream(response.headers()) {
                return Ok(guard_event_stream(response));
            }
            Ok(response)
        })
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

async fn read_status_error(response: reqwest::Response) -> HttpStatus {
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        let room = MAX_ERROR_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let (message, code) = provider_message(&body);
    HttpStatus { status, message, code, retry_after }
}

/// The provider's message: OpenAI's `{"error":{"message","code"}}`, Ollama's `{"error":"…"}`,
/// or the raw text (proxies answer 502 with HTML).
fn provider_message(body: &[u8]) -> (String, Option<String>) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let error = value.get("error").unwrap_or(&value);
        if let Some(text) = error.as_str() {
            return (shorten(text), None);
        }
        if let Some(text) = error.get("message").and_then(|m| m.as_str()) {
            let code = error.get("code").or_else(|| error.get("type")).and_then(|c| c.as_str());
            return (shorten(text), code.map(str::to_owned));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (if text.is_empty() { "(empty body)".to_owned() } else { shorten(text) }, None)
}

/// The pause a provider asks for: OpenAI's `retry-after-ms`, else `Retry-After` in seconds or as
/// an HTTP date (RFC 9110 §10.2.3). A date in the past means "now".
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = text(RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Rebuilds `response` around a body that fails if it ends before `data: [DONE]`.
fn guard_event_stream(response: reqwest::Response) -> reqwest::Response {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = DoneGuard {
        inner: Box::pin(response.bytes_stream()),
        line: Vec::new(),
        done: false,
        ended: false,
    };
    let mut rebuilt = http::Response::new(reqwest::Body::wrap_stream(body));
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

/// Passes SSE bytes through, watching lines for `data: [DONE]`.
struct DoneGuard {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    /// Start of the current line (only the first bytes matter for the check).
    line: Vec<u8>,
    done: bool,
    ended: bool,
}

/// The stream ended before `data: [DONE]`.
#[derive(Debug, thiserror::Error)]
#[error("the provider closed the stream before `data: [DONE]`")]
struct Truncated;

const DONE_LINE: &[u8] = b"data: [DONE]";

impl DoneGuard {
    fn watch(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                self.end_line();
            } else if self.line.len() <= DONE_LINE.len() {
                self.line.push(b);
            }
        }
    }

    fn end_line(&mut self) {
        let line = self.line.trim_ascii();
        if line == DONE_LINE || line == b"data:[DONE]" {
            self.done = true;
        }
        self.line.clear();
    }
}

impl Stream for DoneGuard {
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                self.watch(&bytes);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                self.ended = true;
                self.end_line();
                if self.done {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(Box::new(Truncated))))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        headers.insert(RETRY_AFTER, earlier.parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn provider_messages_in_every_shape() {
        let openai = br#"{"error":{"message":"Bad schema","type":"invalid_request_error","param":null,"code":"bad"}}"#;
        assert_eq!(provider_message(openai), ("Bad schema".into(), Some("bad".into())));
        assert_eq!(provider_message(br#"{"error":"model not found"}"#).0, "model not found");
        assert_eq!(provider_message(b"<html>502</html>").0, "<html>502</html>");
        assert_eq!(provider_message(b"").0, "(empty body)");
    }

    #[test]
    fn quota_exhaustion_is_not_a_rate_limit() {
        let quota = HttpStatus {
            status: 429,
            message: "quota".into(),
            code: Some("insufficient_quota".into()),
            retry_after: None,
        };
        assert!(matches!(quota.into_failure().error, ModelError::Provider { status: 429, .. }));
    }

    #[test]
    fn done_is_seen_across_chunk_boundaries() {
        let mut guard = DoneGuard {
            inner: Box::pin(futures::stream::empty()),
            line: Vec::new(),
            done: false,
            ended: false,
        };
        guard.watch(b"data: {\"a\":1}\n\ndata: [DO");
        assert!(!guard.done);
        guard.watch(b"NE]\n\n");
        assert!(guard.done);
    }
}
