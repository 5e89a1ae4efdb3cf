//! A blocking client of the Hive Metastore's Thrift API (the `hive_metastore` crate, buffered
//! binary transport as the metastore serves it by default) over one or more URIs, tried in
//! order, each call bounded by a timeout. It runs its calls on a small runtime of its own, so
//! the registrar's thread can also use the lake's blocking store.

use std::fmt::Debug;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use hive_metastore::{ThriftHiveMetastoreClient, ThriftHiveMetastoreClientBuilder};
use volo_thrift::MaybeException;

/// Why a metastore call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetastoreError {
    /// No URI answered: the metastore is down or unreachable. Retried.
    #[error("no metastore answered ({tried}): {message}")]
    Unreachable { tried: String, message: String },
    /// The metastore answered with an error.
    #[error("the metastore refused {op}: {message}")]
    Refused { op: &'static str, message: String },
}

/// An answer the metastore gives as an exception that is not a failure here (an object that
/// already exists, or does not).
#[derive(Debug)]
pub enum Answer<T, E> {
    Ok(T),
    Exception(E),
}

pub struct Client {
    runtime: tokio::runtime::Runtime,
    uris: Vec<String>,
    timeout: Duration,
    /// The URI that answered last, and its client.
    current: Option<(usize, ThriftHiveMetastoreClient)>,
}

/// `thrift://host:port` (or `host:port`) → a socket address.
pub fn resolve(uri: &str) -> Result<SocketAddr, String> {
    let host_port = uri.strip_prefix("thrift://").unwrap_or(uri);
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("{uri}: {e}"))?
        .next()
        .ok_or_else(|| format!("{uri}: no address"))
}

impl Client {
    pub fn new(uris: Vec<String>, timeout: Duration) -> std::io::Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            runtime,
            uris,
            timeout,
            current: None,
        })
    }

    fn connect(&self, i: usize) -> Result<ThriftHiveMetastoreClient, String> {
        let addr = resolve(&self.uris[i])?;
        let _in_runtime = self.runtime.enter();
        Ok(ThriftHiveMetastoreClientBuilder::new("hive-metastore")
            .address(addr)
            .make_codec(volo_thrift::codec::default::DefaultMakeCodec::buffered())
            .build())
    }

    /// Run one call on the URI that answered last, then on the others in order, until one
    /// answers. An exception from the metastore is an answer.
    pub fn call<T, E, F, Fut>(
        &mut self,
        op: &'static str,
        f: F,
    ) -> Result<Answer<T, E>, MetastoreError>
    where
        E: Debug,
        F: Fn(ThriftHiveMetastoreClient) -> Fut,
        Fut: Future<Output = Result<MaybeException<T, E>, volo_thrift::ClientError>>,
    {
        let n = self.uris.len();
        let start = self.current.as_ref().map_or(0, |(i, _)| *i);
        let mut last = String::new();
        for i in (0..n).map(|k| (start + k) % n) {
            let client = match self.current.take() {
                Some((j, c)) if j == i => c,
                _ => match self.connect(i) {
                    Ok(c) => c,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                },
            };
            let call = f(client.clone());
            let timeout = self.timeout;
            // The timer is made inside the runtime.
            let answer = self
                .runtime
                .block_on(async move { tokio::time::timeout(timeout, call).await });
            match answer {
                Ok(Ok(MaybeException::Ok(v))) => {
                    self.current = Some((i, client));
                    return Ok(Answer::Ok(v));
                }
                Ok(Ok(MaybeException::Exception(e))) => {
                    self.current = Some((i, client));
                    return Ok(Answer::Exception(e));
                }
                Ok(Err(e)) => last = format!("{}: {op}: {e}", self.uris[i]),
                Err(_) => {
                    last = format!(
                        "{}: {op}: no answer within {:?}",
                        self.uris[i], self.timeout
                    )
                }
            }
        }
        Err(MetastoreError::Unreachable {
            tried: self.uris.join(", "),
            message: last,
        })
    }
}

/// An exception that is a failure, as an error.
pub fn refused<E: Debug>(op: &'static str, e: E) -> MetastoreError {
    MetastoreError::Refused {
        op,
        message: format!("{e:?}"),
    }
}
