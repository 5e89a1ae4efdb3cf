//! The commands of the `normlake` binary. `main.rs` parses, sets up logging and calls
//! [`main`]; everything here returns errors instead of exiting so tests can drive it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::generate::{self, GenerateOptions};
use crate::pipeline::{self, RunOptions};
use crate::telemetry::{LogFormat, Metrics, server};

#[derive(Debug, Parser)]
#[command(
    name = "normlake",
    version,
    about = "Kafka → per-key windowed normalization → Hive-partitioned Parquet"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "NORMLAKE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the job until SIGTERM/SIGINT (or, with --until-end, to the end of the input).
    Run {
        #[arg(long, short, env = "NORMLAKE_CONFIG")]
        config: PathBuf,
        /// Bounded run: consume to the end offsets seen at start, emit every buffered event,
        /// commit, exit.
        #[arg(long)]
        until_end: bool,
        /// Interval of the progress log line.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        progress_every: Duration,
        /// How long committing and closing may take after SIGTERM/SIGINT.
        #[arg(long, env = "NORMLAKE_SHUTDOWN_GRACE", value_parser = humantime::parse_duration, default_value = "30s")]
        shutdown_grace: Duration,
        /// Address of the /metrics, /healthz and /readyz endpoints (`off` to disable; port 0
        /// picks a free port, which is logged).
        #[arg(long, env = "NORMLAKE_METRICS_LISTEN", value_parser = parse_listen, default_value = "127.0.0.1:9898")]
        metrics_listen: Listen,
        /// Processor threads, over `[runtime] workers` (default: the cores but one).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: Option<u16>,
    },
    /// Print the Hive DDL of the configured table and the partitions present.
    Ddl {
        #[arg(long, short, env = "NORMLAKE_CONFIG")]
        config: PathBuf,
        /// The table location to print (default: the configured root's URI).
        #[arg(long)]
        location: Option<String>,
        /// `hive` (Hive, Spark SQL) or `trino` (Trino's Hive connector).
        #[arg(long, value_enum, default_value_t = Dialect::Hive)]
        dialect: Dialect,
        /// The schema (database) the Trino table goes in.
        #[arg(long, default_value = "default")]
        schema: String,
    },
    /// Merge the small files of complete partitions (those with `_SUCCESS`) into files near
    /// `[lake.compaction] target_size`; safe beside a running job and safe to interrupt.
    Compact {
        #[arg(long, short, env = "NORMLAKE_CONFIG")]
        config: PathBuf,
        /// Only this partition, relative to the table (`dt=2026-11-26/hr=02`); repeatable.
        #[arg(long)]
        partition: Vec<String>,
        /// The size merged files aim at (default: the configuration's).
        #[arg(long, value_parser = parse_size)]
        target_size: Option<u64>,
    },
    /// Check a configuration file and report every error at once.
    ValidateConfig {
        #[arg(long, short, env = "NORMLAKE_CONFIG")]
        config: Option<PathBuf>,
        /// The file, as an argument (takes precedence over --config and NORMLAKE_CONFIG).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Produce synthetic sensor events.
    Generate(GenerateOptions),
    /// The embedded demo: an in-process Kafka mock cluster, generated events, a lake in ./lake.
    /// Each run replaces the lake an earlier demo left there.
    Demo {
        /// Where the lake goes: a directory the demo made before (it is replaced), or a new or
        /// empty one.
        #[arg(long, default_value = "lake")]
        lake: PathBuf,
        /// How many events to generate.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
    },
}

/// Which SQL `normlake ddl` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    Hive,
    Trino,
}

/// Where the operator endpoints listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(std::net::SocketAddr),
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("expected a size such as 64MiB: {e}"))
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    s.parse()
        .map(Listen::On)
        .map_err(|e| format!("expected HOST:PORT or `off`: {e}"))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Run one command; the exit code says how it went (2: bad configuration).
pub async fn main(cli: Cli) -> ExitCode {
    let done = match cli.command {
        Command::ValidateConfig { config, file } => match file.or(config) {
            Some(path) => return validate(&path),
            None => Err(Failed::Usage(
                "validate-config needs a file: -c FILE, NORMLAKE_CONFIG or FILE".into(),
            )),
        },
        Command::Ddl {
            config,
            location,
            dialect,
            schema,
        } => print_ddl(&config, location, dialect, &schema),
        Command::Compact {
            config,
            partition,
            target_size,
        } => compact(&config, partition, target_size).await,
        Command::Run {
            config,
            until_end,
            progress_every,
            shutdown_grace,
            metrics_listen,
            workers,
        } => {
            let opts = RunArgs {
                until_end,
                progress_every,
                shutdown_grace,
                metrics_listen,
                workers: workers.map(usize::from),
            };
            run(&config, opts).await
        }
        Command::Generate(opts) => generate(opts).await,
        Command::Demo { lake, events } => crate::demo::run(&lake, events)
            .await
            .map(|_| ())
            .map_err(|e| Failed::Run(format!("demo failed: {e:#}"))),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed::Usage(message)) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
        Err(Failed::Run(message)) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
        Err(Failed::Logged) => ExitCode::FAILURE,
    }
}

/// Why a command failed: how it was called (exit 2), or what it did (exit 1; `Logged`: the
/// log already says why).
enum Failed {
    Usage(String),
    Run(String),
    Logged,
}

/// The configuration, or every error in it (exit 2).
fn load(path: &Path) -> Result<Config, Failed> {
    Config::load(path).map_err(|e| Failed::Usage(e.to_string()))
}

fn print_ddl(
    config: &Path,
    location: Option<String>,
    dialect: Dialect,
    schema: &str,
) -> Result<(), Failed> {
    let c = load(config)?;
    let text = match dialect {
        Dialect::Hive => ddl(&c, location),
        Dialect::Trino => trino_ddl(&c, schema, location),
    }
    .map_err(|e| Failed::Run(format!("cannot list the table's partitions: {e}")))?;
    print!("{text}");
    Ok(())
}

async fn compact(
    config: &Path,
    partitions: Vec<String>,
    target_size: Option<u64>,
) -> Result<(), Failed> {
    let c = load(config)?;
    let opts = crate::compact::CompactOptions {
        target_bytes: target_size.unwrap_or(c.lake.compaction.target_size.0),
        partitions,
    };
    let r = tokio::task::spawn_blocking(move || {
        crate::compact::compact(&c, &opts, |line| tracing::info!("{line}"))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()))
    .map_err(|e| Failed::Run(format!("compaction failed: {e}")))?;
    println!(
        "compacted {} partitions: {} files ({} bytes) into {} ({} bytes), {} rows; {} interrupted merges finished",
        r.partitions, r.files_in, r.bytes_in, r.files_out, r.bytes_out, r.rows, r.resumed
    );
    Ok(())
}

/// The runtime knobs of `run`.
struct RunArgs {
    until_end: bool,
    progress_every: Duration,
    shutdown_grace: Duration,
    metrics_listen: Listen,
    workers: Option<usize>,
}

async fn run(config: &Path, args: RunArgs) -> Result<(), Failed> {
    let mut cfg = load(config)?;
    if args.workers.is_some() {
        cfg.runtime.workers = args.workers;
    }
    // Secrets are `Sensitive`: this dump shows `<redacted>` in their place.
    tracing::debug!(config = ?cfg, "configuration loaded");
    let metrics = Metrics::new();
    if let Listen::On(addr) = args.metrics_listen {
        let listener = server::bind(addr)
            .await
            .map_err(|e| Failed::Usage(e.to_string()))?;
        let bound = listener.local_addr().map_or(addr, |a| a);
        tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
        tokio::spawn(server::serve(listener, metrics.clone()));
    }
    let opts = RunOptions {
        until_end: args.until_end,
        progress_every: args.progress_every,
        shutdown_grace: args.shutdown_grace,
        metrics,
    };
    match pipeline::run(cfg, opts, shutdown_signal()).await {
        Ok(s) => {
            print!("{s}");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "run failed");
            Err(Failed::Logged)
        }
    }
}

async fn generate(opts: GenerateOptions) -> Result<(), Failed> {
    match generate::generate(opts, shutdown_signal()).await {
        Ok(s) => {
            println!(
                "sent {} events ({} malformed, {} late)",
                s.sent, s.malformed, s.late
            );
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "generate failed");
            Err(Failed::Logged)
        }
    }
}

/// The DDL text for a configuration: the table, then the partitions present.
pub fn ddl(c: &Config, location: Option<String>) -> Result<String, crate::lake::LakeError> {
    let layout = c.lake.layout()?;
    let location = location.unwrap_or_else(|| layout.location());
    let table = c.table().hive(&location);
    Ok(table.ddl() + &table.add_partitions_sql(&layout.table_files()?))
}

/// The Trino DDL for a configuration (a partition sync registers the partitions present).
pub fn trino_ddl(
    c: &Config,
    schema: &str,
    location: Option<String>,
) -> Result<String, crate::lake::LakeError> {
    let location = match location {
        Some(l) => l,
        None => c.lake.layout()?.location(),
    };
    Ok(c.table().hive(&location).trino_ddl(schema))
}

fn validate(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            println!("{}: ok", path.display());
            println!(
                "  brokers: {}  topics: {:?}  group: {}",
                c.kafka.brokers, c.kafka.topics, c.kafka.group_id
            );
            for (k, v) in c.kafka.client().printable_properties() {
                println!("  kafka property {k} = {v}");
            }
            println!(
                "  features: {:?}  passthrough: {:?}",
                c.plan.features, c.input.passthrough
            );
            for n in &c.plan.norms {
                println!("  normalize {}: {:?} over {:?}", n.name, n.method, n.window);
            }
            if let Some(l) = &c.plan.layer {
                println!("  layer_norm {} (eps {})", l.name, l.eps);
            }
            println!("  lake: {}/{}", c.lake.root, c.lake.table);
            if c.lake.root.starts_with("s3://") {
                let s3 = &c.lake.s3;
                let or_env =
                    |v: &Option<String>| v.clone().unwrap_or_else(|| "(environment)".into());
                println!(
                    "  lake.s3: endpoint = {}  region = {}  access_key_id = {}  secret_access_key = {}",
                    or_env(&s3.endpoint),
                    or_env(&s3.region),
                    or_env(&s3.access_key_id),
                    if s3.secret_access_key.is_some() {
                        "<redacted>"
                    } else {
                        "(environment)"
                    }
                );
            }
            let d = &c.dead_letter;
            println!(
                "  dead letters: {:?}{}",
                d.destination,
                d.topic
                    .as_deref()
                    .map(|t| format!(" (topic {t})"))
                    .unwrap_or_default()
            );
            for (k, v) in d.properties.iter().flatten() {
                println!(
                    "  dead-letter property {k} = {}",
                    crate::secret::printable(k, v)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}
