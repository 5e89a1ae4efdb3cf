//! A small Schema Registry for the tests: no real one can be installed here (Confluent's is
//! distributed through Maven, Karapace is not packaged). It serves the REST endpoints clients
//! use, with the registry's error codes:
//! - `POST /subjects/{subject}/versions` registers a schema (the same schema text gets the same
//!   id under every subject; a schema that does not parse is `422`, error code 42201);
//! - `GET /schemas/ids/{id}` returns it (`404`, error code 40403, for an unknown id);
//! - anything else is `404` with error code 40401 (subject not found).
//!
//! It runs on its own thread and runtime, can be stopped and started again on the same port
//! (a registry outage), and counts the schema lookups it answered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

#[derive(Default)]
struct Schemas {
    by_id: HashMap<u32, String>,
    ids: HashMap<String, u32>,
    /// Subject → ids of its versions, in order.
    subjects: HashMap<String, Vec<u32>>,
}

#[derive(Clone, Default)]
struct Shared {
    schemas: Arc<Mutex<Schemas>>,
    lookups: Arc<AtomicU64>,
}

pub struct Registry {
    shared: Shared,
    addr: SocketAddr,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/vnd.schemaregistry.v1+json",
        )],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    json(
        status,
        serde_json::json!({ "error_code": code, "message": message }),
    )
}

async fn register(State(s): State<Shared>, Path(subject): Path<String>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    let Some(text) = req["schema"].as_str() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    };
    let kind = req["schemaType"].as_str().unwrap_or("AVRO");
    if kind != "AVRO" || apache_avro::Schema::parse_str(text).is_err() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, "Invalid schema");
    }
    let mut schemas = s.schemas.lock().unwrap();
    let next = schemas.by_id.len() as u32 + 1;
    let id = *schemas.ids.entry(text.to_string()).or_insert(next);
    schemas.by_id.insert(id, text.to_string());
    let versions = schemas.subjects.entry(subject).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    json(StatusCode::OK, serde_json::json!({ "id": id }))
}

async fn schema_by_id(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    s.lookups.fetch_add(1, Ordering::Relaxed);
    let found = id
        .parse::<u32>()
        .ok()
        .and_then(|id| s.schemas.lock().unwrap().by_id.get(&id).cloned());
    match found {
        Some(text) => json(StatusCode::OK, serde_json::json!({ "schema": text })),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, 40401, "Subject not found")
}

impl Registry {
    pub fn start() -> Registry {
        let port = super::broker::free_port();
        let mut r = Registry {
            shared: Shared::default(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            running: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Schema lookups by id answered so far.
    pub fn lookups(&self) -> u64 {
        self.shared.lookups.load(Ordering::Relaxed)
    }

    /// Register a schema under a subject, as a client would; returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> u32 {
        let mut schemas = self.shared.schemas.lock().unwrap();
        let next = schemas.by_id.len() as u32 + 1;
        let id = *schemas.ids.entry(schema.to_string()).or_insert(next);
        schemas.by_id.insert(id, schema.to_string());
        schemas
            .subjects
            .entry(subject.to_string())
            .or_default()
            .push(id);
        id
    }

    /// Stop answering: connections are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }

    /// Serve again on the same port, with the same schemas.
    pub fn restart(&mut self) {
        self.stop();
        let app = Router::new()
            .route("/subjects/{subject}/versions", post(register))
            .route("/schemas/ids/{id}", get(schema_by_id))
            .fallback(not_found)
            .with_state(self.shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let addr = self.addr;
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
                let _ = ready_tx.send(());
                // Not a graceful shutdown: an outage drops open connections too (the
                // runtime, and every connection task with it, ends here).
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = rx => {}
                }
            });
        });
        ready_rx.recv().expect("the registry started");
        self.running = Some((tx, thread));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
