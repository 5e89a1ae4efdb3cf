//! What the benchmarks share: arguments, the synthetic sensor events, and the CPU time and
//! peak RSS of a child process.
#![allow(dead_code)]

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub const KEYS: u64 = 10_000;
pub const FEATURES: usize = 8;

/// The benchmarks' sensor events: event `i` of `KEYS` keys with `FEATURES` features, one event
/// per key per second of event time, deterministic.
pub struct Sensors {
    seed: u64,
}

impl Default for Sensors {
    fn default() -> Self {
        Sensors {
            seed: 0x2545_F491_4F6C_DD1D,
        }
    }
}

impl Sensors {
    fn unit(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// (key, event time, feature values) of event `i`.
    pub fn reading(&mut self, i: u64) -> (String, i64, Vec<f64>) {
        let key = i % KEYS;
        let ts = 1_795_000_000_000 + (i / KEYS) as i64 * 1000 + (key as i64 % 1000);
        // Four decimals, as a sensor would send them (and as the JSON is written).
        let values = (0..FEATURES)
            .map(|_| ((20.0 + 5.0 * self.unit()) * 1e4).round() / 1e4)
            .collect();
        (format!("sensor-{key:05}"), ts, values)
    }

    /// (key, event time, JSON value) of event `i`.
    pub fn event(&mut self, i: u64) -> (String, i64, String) {
        let (key, ts, values) = self.reading(i);
        let mut v = format!("{{\"id\":\"{key}\",\"ts\":{ts}");
        for (f, x) in values.iter().enumerate() {
            v.push_str(&format!(",\"f{f}\":{x:.4}"));
        }
        v.push('}');
        (key, ts, v)
    }

    /// (key, event time, Avro value in Confluent's wire format, schema id `AVRO_ID`) of the
    /// same event `i`.
    pub fn avro_event(&mut self, i: u64, schema: &apache_avro::Schema) -> (String, i64, Vec<u8>) {
        use apache_avro::types::Value;
        let (key, ts, values) = self.reading(i);
        let mut fields = vec![
            ("id".to_string(), Value::String(key.clone())),
            ("ts".to_string(), Value::Long(ts)),
        ];
        for (f, x) in values.iter().enumerate() {
            fields.push((
                format!("f{f}"),
                Value::Union(1, Box::new(Value::Double(*x))),
            ));
        }
        let mut out = vec![0];
        out.extend_from_slice(&AVRO_ID.to_be_bytes());
        let body = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(Value::Record(fields)))
            .expect("encode");
        out.extend(body);
        (key, ts, out)
    }
}

/// The schema id the Avro events carry.
pub const AVRO_ID: u32 = 1;

/// The Avro schema of the benchmark events: the same fields as their JSON.
pub fn avro_schema() -> String {
    let features: Vec<String> = (0..FEATURES)
        .map(|f| format!(r#"{{"name":"f{f}","type":["null","double"],"default":null}}"#))
        .collect();
    format!(
        r#"{{"type":"record","name":"Bench","fields":[{{"name":"id","type":"string"}},{{"name":"ts","type":"long"}},{}]}}"#,
        features.join(",")
    )
}

/// A Schema Registry on loopback that knows `avro_schema()` as `AVRO_ID`: its URL.
pub fn serve_schema() -> String {
    use axum::routing::get;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let body = serde_json::json!({ "schema": avro_schema() }).to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new().route(
                &format!("/schemas/ids/{AVRO_ID}"),
                get(move || async move { body }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    format!("http://{addr}")
}

/// CPU seconds (user + system) and peak RSS in bytes of a child, waiting for it to exit; a
/// child that fails fails the benchmark.
pub fn reap(child: std::process::Child) -> (f64, u64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child, and status and usage point to live values.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child process {pid} failed (wait status {status})"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(usage.ru_utime) + secs(usage.ru_stime),
        usage.ru_maxrss as u64 * 1024,
    )
}

/// Ask a child to stop as on SIGTERM.
pub fn terminate(child: &std::process::Child) {
    // SAFETY: sending SIGTERM to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}
