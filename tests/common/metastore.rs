//! A real Hive Metastore per test: the Thrift server (Hive 2.3, embedded Derby) from the jars
//! of the `pyspark` package that `scripts/test` installs, run with the machine's Java on a free
//! loopback port, stopped (by process id) when dropped. Spark SQL, connected to the same
//! metastore, reads the tables back (`tests/metastore/spark_sql.py`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::broker::free_port;

pub struct Metastore {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// `site-packages/pyspark/jars`.
fn pyspark_jars() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), 'jars'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pyspark is not installed; run scripts/test, which installs it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn hive_site(dir: &Path) -> String {
    let prop =
        |k: &str, v: &str| format!("  <property><name>{k}</name><value>{v}</value></property>\n");
    let d = dir.display();
    [
        "<?xml version=\"1.0\"?>\n<configuration>\n".to_string(),
        prop(
            "javax.jdo.option.ConnectionURL",
            &format!("jdbc:derby:;databaseName={d}/metastore_db;create=true"),
        ),
        prop(
            "javax.jdo.option.ConnectionDriverName",
            "org.apache.derby.jdbc.EmbeddedDriver",
        ),
        prop("datanucleus.schema.autoCreateAll", "true"),
        prop("hive.metastore.schema.verification", "false"),
        prop(
            "hive.metastore.warehouse.dir",
            &format!("file://{d}/warehouse"),
        ),
        // Without it the server dies looking for the LMAX disruptor classes.
        prop("hive.async.log.enabled", "false"),
        "</configuration>\n".to_string(),
    ]
    .concat()
}

impl Metastore {
    /// Start a metastore and wait until it listens (20-40 s on 2 cores).
    pub fn start() -> Metastore {
        Metastore::start_on(free_port())
    }

    /// `start` on a given port (one a job was told about before the metastore was up).
    pub fn start_on(port: u16) -> Metastore {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("conf")).expect("conf dir");
        std::fs::write(dir.path().join("conf/hive-site.xml"), hive_site(dir.path()))
            .expect("hive-site.xml");
        let mut m = Metastore {
            child: None,
            port,
            dir,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let classpath = format!(
            "{}:{}/*",
            self.dir.path().join("conf").display(),
            pyspark_jars().display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("metastore.log"))
            .expect("metastore log");
        let child = Command::new("java")
            .current_dir(self.dir.path())
            .args(["-Xmx512m", "-cp", &classpath])
            .arg(format!("-Dderby.system.home={}", self.dir.path().display()))
            .args(["org.apache.hadoop.hive.metastore.HiveMetaStore", "-p"])
            .arg(self.port.to_string())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start java; run scripts/test, which installs Java 17");
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("the metastore exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the metastore did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("metastore.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn uri(&self) -> String {
        format!("thrift://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop, then start again on the same port with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Spark SQL connected to this metastore: for `database.table`, its partitions
    /// (`SHOW PARTITIONS`), the rows per partition (raw partition values and a count), the
    /// total, and its columns (`DESCRIBE`).
    pub fn spark(&self, database: &str, table: &str) -> serde_json::Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/metastore/spark_sql.py");
        let work = self.dir.path().join("spark");
        super::python_json([
            std::ffi::OsStr::new(script),
            self.uri().as_ref(),
            database.as_ref(),
            table.as_ref(),
            work.as_ref(),
        ])
    }
}

impl Drop for Metastore {
    fn drop(&mut self) {
        self.stop();
    }
}
