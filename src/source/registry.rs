//! A Confluent Schema Registry client: the writer schema of an Avro record, by id
//! (`GET /schemas/ids/{id}`).
//!
//! Only two answers are final: the schema, or the registry's "schema not found" (HTTP 404
//! with error code 40403). Anything else (no connection, a timeout, a 5xx, a refused
//! login) is an outage: the caller's records wait, and the client backs off (0.5 s doubling
//! to 30 s) so that many waiting partitions do not hammer a registry that is down.

use std::time::{Duration, Instant};

use crate::decode::SchemaLookup;
use crate::secret::Sensitive;

/// How to reach the registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Base URLs, tried in order.
    pub urls: Vec<String>,
    /// Basic authentication.
    pub credentials: Option<(String, Sensitive<String>)>,
    /// A PEM file of the CA that signed the registry's certificate.
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
}

/// The registry did not give a final answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the Schema Registry did not answer for schema {id}: {reason}")]
pub struct Unavailable {
    pub id: u32,
    pub reason: String,
    /// When to ask again.
    pub retry_at: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the Schema Registry client cannot start: {0}")]
    Client(String),
}

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A blocking client, for the processor thread: it runs its requests on its own
/// single-threaded runtime.
pub struct Registry {
    opts: RegistryOptions,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// After a failure: no request before this instant, and the back-off so far.
    backoff: Option<(Instant, Duration)>,
}

#[derive(serde::Deserialize)]
struct SchemaAnswer {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

#[derive(serde::Deserialize)]
struct ErrorAnswer {
    error_code: i64,
}

impl Registry {
    pub fn new(opts: RegistryOptions) -> Result<Registry, RegistryError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Client(e.to_string()))?;
        let mut builder = reqwest::Client::builder().timeout(opts.timeout);
        if let Some(pem) = &opts.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|e| RegistryError::Client(format!("the CA certificate: {e}")))?;
            builder = builder.add_root_certificate(ca);
        }
        let http = {
            let _entered = rt.enter();
            builder
                .build()
                .map_err(|e| RegistryError::Client(e.to_string()))?
        };
        Ok(Registry {
            opts,
            rt,
            http,
            backoff: None,
        })
    }

    /// The schema of `id`, or why there is no answer yet.
    pub fn fetch(&mut self, id: u32, now: Instant) -> Result<SchemaLookup, Unavailable> {
        if let Some((until, _)) = self.backoff
            && now < until
        {
            return Err(Unavailable {
                id,
                reason: "backing off after a failed request".into(),
                retry_at: until,
            });
        }
        let mut last = String::from("no URL configured");
        for url in &self.opts.urls {
            match self.rt.block_on(self.ask(url, id)) {
                Ok(found) => {
                    self.backoff = None;
                    return Ok(found);
                }
                Err(reason) => last = reason,
            }
        }
        let next = self
            .backoff
            .map_or(FIRST_BACKOFF, |(_, b)| (b * 2).min(MAX_BACKOFF));
        let retry_at = Instant::now() + next;
        self.backoff = Some((retry_at, next));
        Err(Unavailable {
            id,
            reason: last,
            retry_at,
        })
    }

    async fn ask(&self, base: &str, id: u32) -> Result<SchemaLookup, String> {
        let url = format!("{}/schemas/ids/{id}", base.trim_end_matches('/'));
        let mut req = self
            .http
            .get(&url)
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some((user, password)) = &self.opts.credentials {
            req = req.basic_auth(user, Some(password.expose()));
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if status.is_success() {
            let answer: SchemaAnswer = serde_json::from_slice(&body)
                .map_err(|e| format!("{url}: an answer that is not a schema: {e}"))?;
            return Ok(match answer.schema_type.as_deref() {
                None | Some("AVRO") => SchemaLookup::Found(answer.schema),
                // A Protobuf or JSON schema cannot describe an Avro record.
                Some(_) => SchemaLookup::NotFound,
            });
        }
        let code = serde_json::from_slice::<ErrorAnswer>(&body).map(|e| e.error_code);
        if status == reqwest::StatusCode::NOT_FOUND && code.as_ref().is_ok_and(|c| *c == 40403) {
            return Ok(SchemaLookup::NotFound);
        }
        Err(format!("{url}: HTTP {status}"))
    }
}
