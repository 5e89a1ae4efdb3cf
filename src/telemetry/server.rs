//! The operator's endpoints: `/metrics` (Prometheus text format), `/healthz` (the process
//! serves requests) and `/readyz` (partitions are assigned and the lake is writable).
//!
//! The server runs on the async runtime, which has nothing else to do: the source and the
//! processor run on their own threads, so a scrape never waits for a batch.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::Metrics;

/// Why the endpoints cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr}: {source}")]
pub struct ServerError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Bind the listener (so a taken port is reported before any data moves).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError { addr, source })
}

/// Serve the endpoints until the runtime shuts down.
pub async fn serve(listener: TcpListener, metrics: Metrics) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics endpoint stopped");
    }
}

async fn scrape(State(m): State<Metrics>) -> impl IntoResponse {
    match m.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn ready(State(m): State<Metrics>) -> impl IntoResponse {
    match m.health.not_ready() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}
