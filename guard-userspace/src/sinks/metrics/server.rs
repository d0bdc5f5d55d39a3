//! `GET /metrics` over HTTP/1.1 (hyper). Binding is separate from serving so that the daemon
//! fails at start, with the address in the message, when the port is taken.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};

use super::{CONTENT_TYPE, Metrics};

/// Scrapers served at once; more connections wait for a slot (a scrape takes milliseconds).
const MAX_CONNECTIONS: usize = 32;
/// A client that has not sent its request head by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum MetricsError {
    #[error("cannot bind metrics address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics server on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A bound, not yet serving, metrics socket.
#[derive(Debug)]
pub(crate) struct MetricsListener {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `addr` now (no async runtime needed). Port 0 picks a free port.
    pub(crate) fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind = |source| MetricsError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        Ok(Self { listener, addr })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `/metrics` until `shutdown` turns true (or its sender is dropped). Stops accepting
    /// then; scrapes in flight finish on their own. Needs a tokio runtime.
    pub(crate) async fn serve(self, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) -> Result<(), MetricsError> {
        let addr = self.addr;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|source| MetricsError::Serve { addr, source })?;
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let accepted = tokio::select! {
                a = listener.accept() => a,
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                // Per-connection failures (reset before accept, fd limits) must not stop the server.
                Err(e) => {
                    tracing::debug!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().acquire_owned().await else { return Ok(()) };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| respond(req, metrics.clone()));
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "metrics: connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

async fn respond(req: Request<Incoming>, metrics: Arc<Metrics>) -> Result<Response<Full<Bytes>>, Infallible> {
    let head = req.method() == Method::HEAD;
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        (&Method::GET | &Method::HEAD, "/healthz") => (StatusCode::OK, "text/plain; charset=utf-8", "ok\n".to_owned()),
        (_, "/metrics" | "/healthz") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "method not allowed\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found: try /metrics\n".to_owned()),
    };
    let len = body.len();
    let body = if head { Bytes::new() } else { Bytes::from(body) };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    Ok(resp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests panic with their message on failure")]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_over_http_and_stops() {
        let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr();
        let metrics = Arc::new(Metrics::default());
        metrics.set_tls_targets("openssl", "dynsym", 1);
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(listener.serve(metrics, stopped));

        let resp = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"), "{resp}");
        assert!(resp.contains("\r\n\r\n# HELP guard_llm_requests "), "{resp}");
        assert!(resp.contains("guard_tls_targets_attached{library=\"openssl\",strategy=\"dynsym\"} 1\n"), "{resp}");
        assert!(resp.ends_with("# EOF\n"), "{resp}");

        let resp = get(addr, "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");
        let resp = get(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{resp}");
        let resp = get(addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n") && resp.ends_with("\r\n\r\n"), "{resp}");

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after shutdown");
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let first = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr();
        let err = MetricsListener::bind(addr).unwrap_err().to_string();
        assert!(err.starts_with(&format!("cannot bind metrics address {addr}: Address already in use")), "{err}");
    }
}
