//! Where the lake's bytes live: a local directory or an S3-compatible bucket.
//!
//! Everything above this module speaks in *keys*: `/`-separated paths relative to the lake's
//! root (`sensors/dt=2026-11-26/hr=02/part-….parquet`). The two backends keep the same commit
//! guarantees with different primitives:
//!
//! | operation | local directory | object store (`object_store`, S3 API) |
//! |---|---|---|
//! | write a file being built | in place, under its hidden temporary key | in the local spool directory |
//! | make it durable (`upload`) | `fsync` | one PUT (multipart when large) to its hidden temporary key |
//! | `put` a small object atomically | temporary name, `fsync`, rename, `fsync` the directory | one PUT (atomic on S3) |
//! | `publish` (temporary → final) | rename, `fsync` the directory | server-side copy, then delete the temporary object |
//!
//! S3 has no rename, so a final object is only ever created from a complete, already uploaded
//! object, after the commit record that names both was written. A crash between the copy and
//! the delete is finished by recovery (the copy is repeated: it is idempotent).
//!
//! `object_store` is asynchronous; the lake's callers are synchronous threads. The object
//! backend owns a small runtime and blocks on it (from a helper thread when the caller is itself
//! inside a runtime).

use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

use serde::Deserialize;

use super::LakeError;
use crate::secret::Sensitive;

/// `[lake.s3]`: an S3-compatible object store (AWS S3, MinIO, …). Every field is optional:
/// unset ones come from the standard `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`,
/// `AWS_ALLOW_HTTP`), then from the instance's role.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    /// `https://host:port` of an S3-compatible server (default: AWS).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Sensitive<String>>,
    /// Allow plain `http://` endpoints (a local MinIO); TLS is required otherwise.
    #[serde(default)]
    pub allow_http: bool,
    /// A PEM file of an extra trusted root certificate (a private CA).
    pub ca_certificate: Option<PathBuf>,
    /// `bucket.host` addressing instead of `host/bucket`.
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// Where files are built before upload (default: the system's temporary directory).
    pub spool_dir: Option<PathBuf>,
}

/// A lake root. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.uri(""))
    }
}

impl PartialEq for Store {
    fn eq(&self, other: &Self) -> bool {
        self.uri("") == other.uri("")
    }
}

impl Eq for Store {}

enum Backend {
    Local { root: PathBuf },
    Object(ObjectBackend),
}

struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    /// Key prefix inside the bucket, empty or ending in `/`.
    prefix: String,
    spool: PathBuf,
    runtime: OwnedRuntime,
}

/// A runtime that may be dropped anywhere (also inside another runtime).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Objects larger than this are uploaded in parts.
const PART_BYTES: usize = 16 << 20;

fn store_err<'a>(
    op: &'static str,
    key: &'a str,
) -> impl FnOnce(object_store::Error) -> LakeError + 'a {
    move |source| LakeError::Store {
        op,
        key: key.to_string(),
        source: Box::new(source),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LakeError + '_ {
    move |source| LakeError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// A local directory (a path or a `file://` URI).
    pub fn local(root: &str) -> Store {
        let root = root.strip_prefix("file://").unwrap_or(root);
        Store {
            backend: Arc::new(Backend::Local {
                root: PathBuf::from(root),
            }),
        }
    }

    /// The store a configured root names: `s3://bucket[/prefix]` is an S3-compatible bucket
    /// (settings from `[lake.s3]`, then the standard `AWS_*` environment variables);
    /// anything else is a local directory.
    pub fn open(root: &str, s3: &S3Options) -> Result<Store, LakeError> {
        let Some(rest) = root.strip_prefix("s3://") else {
            return Ok(Store::local(root));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let bad = |message: String| LakeError::Config {
            root: root.to_string(),
            message,
        };
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(e) = &s3.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &s3.region {
            b = b.with_region(r);
        }
        if let Some(k) = &s3.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &s3.secret_access_key {
            b = b.with_secret_access_key(k.expose());
        }
        if s3.virtual_hosted_style {
            b = b.with_virtual_hosted_style_request(true);
        }
        let mut client = ClientOptions::new();
        if s3.allow_http {
            client = client.with_allow_http(true);
        }
        if let Some(ca) = &s3.ca_certificate {
            let pem =
                std::fs::read(ca).map_err(|e| bad(format!("cannot read {}: {e}", ca.display())))?;
            let cert = object_store::Certificate::from_pem(&pem)
                .map_err(|e| bad(format!("{} is not a PEM certificate: {e}", ca.display())))?;
            client = client.with_root_certificate(cert);
        }
        let store = b
            .with_client_options(client)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("normlake-s3")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the object store's runtime: {e}")))?;
        let spool = s3
            .spool_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("normlake-spool"))
            .join(bucket)
            .join(prefix.trim_end_matches('/'));
        Ok(Store {
            backend: Arc::new(Backend::Object(ObjectBackend {
                store: Arc::new(store),
                bucket: bucket.to_string(),
                prefix,
                spool,
                runtime: OwnedRuntime(Some(runtime)),
            })),
        })
    }

    pub fn is_local(&self) -> bool {
        matches!(*self.backend, Backend::Local { .. })
    }

    /// The URI of a key, as other engines name it (`file:///abs/path`, `s3://bucket/key`).
    pub fn uri(&self, key: &str) -> String {
        match &*self.backend {
            Backend::Local { root } => {
                let abs = std::path::absolute(root).unwrap_or_else(|_| root.clone());
                let p = if key.is_empty() { abs } else { abs.join(key) };
                format!("file://{}", p.display())
            }
            Backend::Object(o) => format!("s3://{}/{}{}", o.bucket, o.prefix, key)
                .trim_end_matches('/')
                .to_string(),
        }
    }

    /// Where a file that will be stored under `key` is written while it is built: the key's
    /// own place in a local lake, the spool directory for an object store.
    pub fn work_path(&self, key: &str) -> PathBuf {
        match &*self.backend {
            Backend::Local { root } => root.join(key),
            Backend::Object(o) => o.spool.join(key),
        }
    }

    /// The local spool directory of an object store (`None` for a local lake).
    pub fn spool(&self) -> Option<&Path> {
        match &*self.backend {
            Backend::Local { .. } => None,
            Backend::Object(o) => Some(&o.spool),
        }
    }

    /// Write a small object whole, atomically and durably: on an object store one PUT, in a
    /// local lake the way [`Store::put_streamed`] writes.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        match &*self.backend {
            Backend::Local { .. } => self.put_streamed(key, &mut |w| w.write_all(&bytes)),
            Backend::Object(o) => {
                let path = o.path(key)?;
                o.block(async { o.store.put(&path, PutPayload::from(bytes)).await })
                    .map(|_| ())
                    .map_err(store_err("write", key))
            }
        }
    }

    /// Write an object, possibly large, from a writer callback, atomically and durably, without
    /// holding it in memory: a local lake writes a hidden file, syncs and renames it; an object
    /// store gets it from the spool (in parts when large). State checkpoints go this way.
    pub fn put_streamed(
        &self,
        key: &str,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), LakeError> {
        let path = match &*self.backend {
            Backend::Local { root } => {
                let dest = root.join(key);
                let name = dest
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                dest.with_file_name(format!(".{name}.tmp"))
            }
            Backend::Object(o) => o.spool.join(key),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| LakeError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = File::create(&path).map_err(io_err(&path))?;
        let mut w = io::BufWriter::with_capacity(1 << 20, file);
        let file = write(&mut w)
            .and_then(|()| w.into_inner().map_err(io::IntoInnerError::into_error))
            .map_err(io_err(&path));
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        match &*self.backend {
            Backend::Local { root } => {
                file.sync_all().map_err(io_err(&path))?;
                drop(file);
                super::rename_durably(&path, &root.join(key))
            }
            Backend::Object(_) => self.upload(file, key).inspect_err(|_| {
                let _ = std::fs::remove_file(&path);
            }),
        }
    }

    /// The bytes of an object, `None` if there is none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, LakeError> {
        match &*self.backend {
            Backend::Local { root } => {
                let p = root.join(key);
                match std::fs::read(&p) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(&p)(e)),
                }
            }
            Backend::Object(o) => {
                let path = o.path(key)?;
                let got = o.block(async {
                    match o.store.get(&path).await {
                        Ok(r) => r.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                });
                got.map(|b| b.map(|b| b.to_vec()))
                    .map_err(store_err("read", key))
            }
        }
    }

    /// The bytes `range` of an object.
    pub fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>, LakeError> {
        match &*self.backend {
            Backend::Local { root } => {
                use std::io::{Read, Seek, SeekFrom};
                let p = root.join(key);
                let mut f = File::open(&p).map_err(io_err(&p))?;
                f.seek(SeekFrom::Start(range.start)).map_err(io_err(&p))?;
                let mut buf = vec![0; (range.end - range.start) as usize];
                f.read_exact(&mut buf).map_err(io_err(&p))?;
                Ok(buf)
            }
            Backend::Object(o) => {
                let path = o.path(key)?;
                o.block(async { o.store.get_range(&path, range).await })
                    .map(|b| b.to_vec())
                    .map_err(store_err("read", key))
            }
        }
    }

    pub fn exists(&self, key: &str) -> Result<bool, LakeError> {
        match &*self.backend {
            Backend::Local { root } => {
                let p = root.join(key);
                p.try_exists().map_err(io_err(&p))
            }
            Backend::Object(o) => {
                let path = o.path(key)?;
                o.block(async {
                    match o.store.head(&path).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .map_err(store_err("look up", key))
            }
        }
    }

    /// Delete an object; one that is not there is not an error.
    pub fn delete(&self, key: &str) -> Result<(), LakeError> {
        match &*self.backend {
            Backend::Local { root } => {
                let p = root.join(key);
                match std::fs::remove_file(&p) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err(&p)(e)),
                }
            }
            Backend::Object(o) => {
                let path = o.path(key)?;
                o.block(async {
                    match o.store.delete(&path).await {
                        Err(object_store::Error::NotFound { .. }) => Ok(()),
                        r => r,
                    }
                })
                .map_err(store_err("delete", key))
            }
        }
    }

    /// Every key below the directory `dir` (recursively), sorted. A directory that does not
    /// exist has none.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, LakeError> {
        Ok(self.list_sized(dir)?.into_iter().map(|(k, _)| k).collect())
    }

    /// [`Store::list`] with each object's size in bytes.
    pub fn list_sized(&self, dir: &str) -> Result<Vec<(String, u64)>, LakeError> {
        let mut out = match &*self.backend {
            Backend::Local { root } => {
                let mut out = Vec::new();
                let mut stack = vec![root.join(dir)];
                while let Some(d) = stack.pop() {
                    let entries = match std::fs::read_dir(&d) {
                        Ok(e) => e,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err(&d)(e)),
                    };
                    for entry in entries {
                        let entry = entry.map_err(io_err(&d))?;
                        let path = entry.path();
                        let meta = match entry.metadata() {
                            Ok(m) => m,
                            // Deleted while listing (a concurrent publish or clean-up).
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(io_err(&path)(e)),
                        };
                        if meta.is_dir() {
                            stack.push(path);
                        } else if let Ok(rel) = path.strip_prefix(root) {
                            out.push((rel.to_string_lossy().replace('\\', "/"), meta.len()));
                        }
                    }
                }
                out
            }
            Backend::Object(o) => {
                let prefix = o.path(dir)?;
                let found: Vec<object_store::ObjectMeta> = o
                    .block(async { o.store.list(Some(&prefix)).try_collect().await })
                    .map_err(store_err("list", dir))?;
                found
                    .into_iter()
                    .filter_map(|m| {
                        m.location
                            .as_ref()
                            .strip_prefix(o.prefix.as_str())
                            .map(|k| (k.to_string(), m.size))
                    })
                    .collect()
            }
        };
        out.sort();
        Ok(out)
    }

    /// Make the complete file at [`Store::work_path`]`(key)` durable under `key`. An object
    /// store receives it (in parts when large) and the spool copy is deleted.
    pub fn upload(&self, file: File, key: &str) -> Result<(), LakeError> {
        match &*self.backend {
            Backend::Local { root } => file.sync_all().map_err(io_err(&root.join(key))),
            Backend::Object(o) => {
                drop(file);
                let local = o.spool.join(key);
                let path = o.path(key)?;
                let res = o.block(async {
                    let mut f = tokio::fs::File::open(&local).await.map_err(|e| {
                        object_store::Error::Generic {
                            store: "spool",
                            source: Box::new(e),
                        }
                    })?;
                    let mut w = object_store::buffered::BufWriter::with_capacity(
                        o.store.clone(),
                        path,
                        PART_BYTES,
                    );
                    tokio::io::copy(&mut f, &mut w).await.map_err(|e| {
                        object_store::Error::Generic {
                            store: "S3",
                            source: Box::new(e),
                        }
                    })?;
                    tokio::io::AsyncWriteExt::shutdown(&mut w)
                        .await
                        .map_err(|e| object_store::Error::Generic {
                            store: "S3",
                            source: Box::new(e),
                        })
                });
                res.map_err(store_err("upload", key))?;
                std::fs::remove_file(&local).map_err(io_err(&local))
            }
        }
    }

    /// Drop a file being built (and its spool copy).
    pub fn discard(&self, key: &str) -> Result<(), LakeError> {
        let p = self.work_path(key);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Make the durable object `tmp` visible as `dest`.
    pub fn publish(&self, tmp: &str, dest: &str) -> Result<(), LakeError> {
        match &*self.backend {
            Backend::Local { root } => super::rename_durably(&root.join(tmp), &root.join(dest)),
            Backend::Object(o) => {
                let (from, to) = (o.path(tmp)?, o.path(dest)?);
                o.block(async { o.store.copy(&from, &to).await })
                    .map_err(store_err("copy", dest))?;
                self.delete(tmp)
            }
        }
    }
}

impl ObjectBackend {
    fn path(&self, key: &str) -> Result<ObjectPath, LakeError> {
        let full = format!("{}{}", self.prefix, key);
        ObjectPath::parse(&full).map_err(|e| LakeError::Store {
            op: "name",
            key: key.to_string(),
            source: Box::new(e.into()),
        })
    }

    /// Run a future to completion on this store's runtime.
    fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let Some(rt) = &self.runtime.0 else {
            unreachable!("the runtime lives as long as the store")
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking inside a runtime is not allowed: wait on a helper thread instead.
            std::thread::scope(|s| match s.spawn(|| rt.block_on(fut)).join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
        } else {
            rt.block_on(fut)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_store_puts_lists_publishes_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::local(dir.path().to_str().unwrap());
        assert!(s.is_local());
        assert_eq!(s.list("t").unwrap(), Vec::<String>::new());
        s.put("t/_normlake/x.json", b"{}".to_vec()).unwrap();
        assert_eq!(s.get("t/_normlake/x.json").unwrap().unwrap(), b"{}");
        assert_eq!(s.get("t/none").unwrap(), None);
        let work = s.work_path("t/dt=1/.part-a.tmp");
        std::fs::create_dir_all(work.parent().unwrap()).unwrap();
        let mut f = File::create(&work).unwrap();
        f.write_all(b"rows").unwrap();
        s.upload(f, "t/dt=1/.part-a.tmp").unwrap();
        s.publish("t/dt=1/.part-a.tmp", "t/dt=1/part-a.parquet")
            .unwrap();
        assert_eq!(
            s.list("t").unwrap(),
            vec!["t/_normlake/x.json", "t/dt=1/part-a.parquet"]
        );
        assert!(s.exists("t/dt=1/part-a.parquet").unwrap());
        s.delete("t/dt=1/part-a.parquet").unwrap();
        s.delete("t/dt=1/part-a.parquet").unwrap();
        assert!(!s.exists("t/dt=1/part-a.parquet").unwrap());
        assert!(s.uri("t").starts_with("file:///"));
    }

    #[test]
    fn an_s3_root_names_bucket_and_prefix_and_hive_escapes_survive() {
        let s = Store::open(
            "s3://lake/warehouse/",
            &S3Options {
                endpoint: Some("http://127.0.0.1:1".into()),
                region: Some("us-east-1".into()),
                allow_http: true,
                ..S3Options::default()
            },
        )
        .unwrap();
        assert!(!s.is_local());
        assert_eq!(s.uri("t"), "s3://lake/warehouse/t");
        let Backend::Object(o) = &*s.backend else {
            unreachable!()
        };
        // Hive's escapes (`%2F`) are kept as they are, not encoded a second time.
        let p = o.path("t/site=a%2Fb/part-x.parquet").unwrap();
        assert_eq!(p.as_ref(), "warehouse/t/site=a%2Fb/part-x.parquet");
        assert!(o.path("t/../x").is_err());
    }
}
