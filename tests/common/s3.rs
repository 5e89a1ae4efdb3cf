//! A real S3-compatible server per test: `s3s-fs` 0.14.1 (an S3 API server over a local
//! directory, from crates.io) on a free loopback port with an access key, stopped (by process
//! id) when dropped. `scripts/test` installs it; a missing binary fails the test, it never
//! skips it. Tests talk to it only through the S3 API (`object_store`'s S3 client, the code
//! path users run against AWS or MinIO), never through its directory.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use normlake::config::{S3Options, Sensitive};
use normlake::lake::Store;

use super::broker::free_port;

pub const ACCESS_KEY: &str = "normlake-test";
pub const SECRET_KEY: &str = "s3-secret-Jx9qPZk2";

pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Where the job builds files before upload.
    pub spool: tempfile::TempDir,
}

fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("NORMLAKE_S3S_FS") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidate = home.join(".cargo/bin/s3s-fs");
    if candidate.exists() {
        candidate
    } else {
        PathBuf::from("s3s-fs")
    }
}

impl S3Server {
    /// Start a server with the buckets given.
    pub fn start(buckets: &[&str]) -> S3Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        for b in buckets {
            // s3s-fs serves each top-level directory as a bucket.
            std::fs::create_dir_all(data.join(b)).expect("bucket dir");
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("s3.log")).expect("s3 log");
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&data)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start s3s-fs ({}): {e}; run scripts/test, which installs it",
                    s3s_fs().display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        S3Server {
            child: Some(child),
            port,
            dir,
            spool: tempfile::tempdir().expect("spool dir"),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[lake.s3]` section of a job configuration for this server.
    pub fn config_section(&self) -> String {
        format!(
            "[lake.s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\nallow_http = true\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\nspool_dir = \"{}\"\n",
            self.endpoint(),
            self.spool.path().display()
        )
    }

    /// The `[lake.s3]` section without credentials: they come from [`S3Server::env`].
    pub fn config_section_without_keys(&self) -> String {
        format!(
            "[lake.s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\nallow_http = true\nspool_dir = \"{}\"\n",
            self.endpoint(),
            self.spool.path().display()
        )
    }

    /// The standard AWS environment variables holding this server's credentials.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
    }

    pub fn section(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            allow_http: true,
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(Sensitive::new(SECRET_KEY.into())),
            spool_dir: Some(self.spool.path().to_path_buf()),
            ..S3Options::default()
        }
    }

    /// A client of a root on this server (`s3://bucket/prefix`).
    pub fn store(&self, root: &str) -> Store {
        Store::open(root, &self.section()).expect("open the S3 store")
    }

    /// Download every object below `dirs` of `root` into a local directory, through the S3
    /// API, so the local lake readers can check it.
    pub fn download(&self, root: &str, dirs: &[&str], into: &Path) -> Vec<String> {
        let store = self.store(root);
        let mut keys = Vec::new();
        for d in dirs {
            for key in store.list(d).expect("list objects") {
                let bytes = store.get(&key).expect("get object").expect("listed object");
                let local = into.join(&key);
                std::fs::create_dir_all(local.parent().expect("parent")).expect("mkdir");
                std::fs::write(&local, bytes).expect("write local copy");
                keys.push(key);
            }
        }
        keys
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
