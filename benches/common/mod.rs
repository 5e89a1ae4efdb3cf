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

    /// (key, event time, JSON value) of event `i`.
    pub fn event(&mut self, i: u64) -> (String, i64, String) {
        let key = i % KEYS;
        let ts = 1_795_000_000_000 + (i / KEYS) as i64 * 1000 + (key as i64 % 1000);
        let mut v = format!("{{\"id\":\"sensor-{key:05}\",\"ts\":{ts}");
        for f in 0..FEATURES {
            v.push_str(&format!(",\"f{f}\":{:.4}", 20.0 + 5.0 * self.unit()));
        }
        v.push('}');
        (format!("sensor-{key:05}"), ts, v)
    }
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
