//! The docker-compose stack is correct by construction (no Docker engine runs here): the
//! compose file parses as a compose file, every file it references exists, every dependency
//! and health condition points at a real service, no two services publish the same port, the
//! job's configuration passes validation, Prometheus scrapes the port the job listens on, the
//! Grafana dashboard is valid JSON that queries only metrics normlake exports, the Trino
//! DDL the stack applies is exactly what `normlake ddl --dialect trino` prints, every shell
//! command parses (after YAML and compose have had their say), the image's build stage holds
//! every file the build reads, and every image comes from a registry that serves it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use docker_compose_types::{
    BuildStep, Command, Compose, DependsOnOptions, Ports, Service, Volumes,
};
use normlake::config::Config;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn deploy() -> PathBuf {
    Path::new(ROOT).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> (Compose, serde_norway::Value) {
    let text = read(&deploy().join("docker-compose.yml"));
    let typed: Compose = serde_norway::from_str(&text).expect("a valid compose file");
    let raw: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    (typed, raw)
}

fn services(c: &Compose) -> BTreeMap<String, Service> {
    c.services
        .0
        .iter()
        .map(|(n, s)| (n.clone(), s.clone().unwrap_or_default()))
        .collect()
}

fn args(s: &Service) -> Vec<String> {
    match &s.command {
        Some(Command::Args(a)) => a.clone(),
        Some(Command::Simple(c)) => c.split_whitespace().map(str::to_string).collect(),
        None => Vec::new(),
    }
}

/// (host path, container path) of every bind mount of a service.
fn binds(s: &Service) -> Vec<(String, String)> {
    s.volumes
        .iter()
        .filter_map(|v| match v {
            Volumes::Simple(spec) => {
                let mut parts = spec.split(':');
                let src = parts.next()?.to_string();
                let dst = parts.next()?.to_string();
                src.starts_with('.').then_some((src, dst))
            }
            Volumes::Advanced(_) => None,
        })
        .collect()
}

fn named_volumes(s: &Service) -> Vec<String> {
    s.volumes
        .iter()
        .filter_map(|v| match v {
            Volumes::Simple(spec) => {
                let src = spec.split(':').next()?;
                (!src.starts_with('.') && !src.starts_with('/')).then(|| src.to_string())
            }
            Volumes::Advanced(_) => None,
        })
        .collect()
}

#[test]
fn every_service_uses_only_compose_keys_and_has_an_image_or_a_build() {
    let (c, raw) = compose();
    // Keys of the compose specification's service definition that this stack may use: a typo
    // (`depend_on`) would otherwise be ignored silently.
    let known: BTreeSet<&str> = [
        "image",
        "build",
        "command",
        "entrypoint",
        "environment",
        "depends_on",
        "ports",
        "volumes",
        "healthcheck",
        "restart",
        "stop_grace_period",
        "user",
        "pull_policy",
    ]
    .into();
    let raw_services = raw
        .get("services")
        .and_then(|s| s.as_mapping())
        .expect("services");
    for (name, def) in raw_services {
        let name = name.as_str().expect("service name");
        for key in def.as_mapping().expect("service mapping").keys() {
            let key = key.as_str().expect("key");
            assert!(known.contains(key), "{name}: unknown service key {key}");
        }
    }
    let svcs = services(&c);
    assert!(svcs.len() >= 10, "the stack has its services");
    let built: BTreeSet<String> = svcs
        .values()
        .filter(|s| s.build_.is_some())
        .filter_map(|s| s.image.clone())
        .collect();
    for (name, s) in &svcs {
        assert!(
            s.image.is_some() || s.build_.is_some(),
            "{name} has neither image nor build"
        );
        // A service that runs an image another one builds must not try to pull it.
        if s.build_.is_none() && s.image.as_ref().is_some_and(|i| built.contains(i)) {
            assert_eq!(
                s.pull_policy,
                Some(docker_compose_types::PullPolicy::Never),
                "{name} runs a locally built image"
            );
        }
    }
    for wanted in [
        "kafka",
        "minio",
        "hive-metastore",
        "trino",
        "normlake",
        "generator",
        "schema-registry",
        "prometheus",
        "grafana",
    ] {
        assert!(svcs.contains_key(wanted), "the stack runs {wanted}");
    }
    assert!(
        svcs["kafka"]
            .image
            .as_deref()
            .is_some_and(|i| i.starts_with("apache/kafka:")),
        "Apache Kafka's official image (KRaft)"
    );
    assert!(
        svcs["hive-metastore"]
            .image
            .as_deref()
            .is_some_and(|i| i.starts_with("apache/hive:")),
        "the official Hive image as a standalone metastore"
    );
}

#[test]
fn referenced_files_exist_and_dependencies_point_at_real_services() {
    let (c, _) = compose();
    let svcs = services(&c);
    let declared: BTreeSet<String> = c.volumes.0.keys().cloned().collect();
    for (name, s) in &svcs {
        for (src, dst) in binds(s) {
            let p = deploy().join(&src);
            assert!(
                p.exists(),
                "{name}: {src} (mounted at {dst}) does not exist"
            );
        }
        for v in named_volumes(s) {
            assert!(declared.contains(&v), "{name}: volume {v} is not declared");
        }
        if let Some(BuildStep::Advanced(b)) = &s.build_ {
            let ctx = deploy().join(&b.context);
            assert!(ctx.is_dir(), "{name}: build context {}", b.context);
            let df = ctx.join(b.dockerfile.as_deref().unwrap_or("Dockerfile"));
            assert!(df.is_file(), "{name}: {}", df.display());
        }
        let deps: Vec<(String, Option<String>)> = match &s.depends_on {
            DependsOnOptions::Simple(v) => v.iter().map(|d| (d.clone(), None)).collect(),
            DependsOnOptions::Conditional(m) => m
                .iter()
                .map(|(d, c)| (d.clone(), Some(c.condition.clone())))
                .collect(),
        };
        for (dep, condition) in deps {
            let target = svcs
                .get(&dep)
                .unwrap_or_else(|| panic!("{name} depends on unknown service {dep}"));
            match condition.as_deref() {
                Some("service_healthy") => assert!(
                    target
                        .healthcheck
                        .as_ref()
                        .is_some_and(|h| h.test.is_some()),
                    "{name} waits for {dep} to be healthy, but {dep} has no health check"
                ),
                Some("service_completed_successfully") => assert!(
                    matches!(target.restart.as_deref(), Some("no" | "on-failure")),
                    "{name} waits for {dep} to complete: it must be a one-shot service \
                     (restart \"no\", or \"on-failure\" to retry until it succeeds)"
                ),
                Some("service_started") | None => {}
                Some(other) => panic!("{name}: unknown condition {other}"),
            }
        }
    }
    // The Dockerfile copies files that exist, builds in stages and runs unprivileged.
    let dockerfile = read(&deploy().join("Dockerfile"));
    assert!(dockerfile.matches("\nFROM ").count() >= 2, "multi-stage");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "non-root: {user}"
    );
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(
                Path::new(ROOT).join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
        }
    }
}

#[test]
fn no_two_services_publish_the_same_host_port() {
    let (c, _) = compose();
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    for (name, s) in services(&c) {
        let published: Vec<u16> = match &s.ports {
            Ports::Short(v) => v
                .iter()
                .map(|p| {
                    let host = p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h);
                    let host = host.rsplit(':').next().unwrap_or(host);
                    host.parse().unwrap_or_else(|_| panic!("{name}: port {p}"))
                })
                .collect(),
            Ports::Long(v) => v
                .iter()
                .filter_map(|p| match &p.published {
                    Some(docker_compose_types::PublishedPort::Single(n)) => Some(*n),
                    _ => None,
                })
                .collect(),
        };
        for port in published {
            if let Some(other) = seen.insert(port, name.clone()) {
                panic!("{name} and {other} both publish port {port}");
            }
        }
    }
    assert!(
        seen.contains_key(&8080) && seen.contains_key(&3000),
        "{seen:?}"
    );
}

/// The job's configuration as the stack mounts it.
fn stack_config(c: &Compose) -> (Service, Config, PathBuf) {
    let svcs = services(c);
    let job = svcs["normlake"].clone();
    let a = args(&job);
    let at = a
        .iter()
        .position(|x| x == "--config")
        .expect("the job names its config");
    let in_container = &a[at + 1];
    let (host, _) = binds(&job)
        .into_iter()
        .find(|(_, dst)| dst == in_container)
        .expect("the config file is mounted");
    let path = deploy().join(host);
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (job, cfg, path)
}

#[test]
fn the_jobs_configuration_is_valid_and_points_into_the_stack() {
    let (c, _) = compose();
    let svcs = services(&c);
    let (job, cfg, path) = stack_config(&c);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_normlake"))
        .arg("validate-config")
        .arg(&path)
        .output()
        .expect("validate-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let broker_host = cfg.kafka.brokers.split(':').next().expect("host");
    assert!(
        svcs.contains_key(broker_host),
        "brokers {}",
        cfg.kafka.brokers
    );
    let bucket = cfg
        .lake
        .root
        .strip_prefix("s3://")
        .and_then(|r| r.split('/').next())
        .expect("an s3:// lake");
    let mc = args(&svcs["minio-init"]).join(" ");
    assert!(
        mc.contains(&format!("local/{bucket}")),
        "minio-init creates the bucket {bucket}: {mc}"
    );
    let endpoint = cfg.lake.s3.endpoint.as_deref().expect("endpoint");
    assert!(endpoint.starts_with("http://minio:"), "{endpoint}");
    assert!(svcs.contains_key("minio"));
    // The job reads the generator's Avro through the stack's Schema Registry.
    assert_eq!(
        cfg.input.format,
        normlake::decode::InputFormat::AvroConfluent
    );
    let registry = cfg.registry.as_ref().expect("a schema registry").url.list();
    assert_eq!(registry, ["http://schema-registry:8081"]);
    let generator = args(&svcs["generator"]);
    assert!(
        generator.windows(2).any(|w| w == ["--format", "avro"]),
        "{generator:?}"
    );
    // The example configuration baked into the image validates too.
    Config::load(&deploy().join("normlake.toml")).expect("deploy/normlake.toml");
    // Its metrics port is the one Prometheus scrapes.
    let a = args(&job);
    let listen = &a[a
        .iter()
        .position(|x| x == "--metrics-listen")
        .expect("listen")
        + 1];
    let port = listen.rsplit(':').next().expect("port");
    let prom: serde_norway::Value =
        serde_norway::from_str(&read(&deploy().join("prometheus/prometheus.yml")))
            .expect("prometheus.yml");
    let targets: Vec<String> = prom["scrape_configs"]
        .as_sequence()
        .expect("scrape configs")
        .iter()
        .flat_map(|s| {
            s["static_configs"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|s| s["targets"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert!(
        targets.contains(&format!("normlake:{port}")),
        "Prometheus scrapes normlake:{port}: {targets:?}"
    );
}

/// Every series name normlake exports, as Prometheus stores them: the sample lines of a
/// registry in which every labelled family has a series.
fn exported_series() -> BTreeSet<String> {
    let m = normlake::telemetry::Metrics::new();
    m.dead_letter("malformed_json");
    m.set_lag([("sensors".to_string(), 0, 5)]);
    let mut times = normlake::telemetry::RowTimes::default();
    times.push([750, 750, 750]);
    m.record_latencies(1_000, &times);
    m.committed_at("sensors", 0, Some(500), 1_000);
    m.set_owned([("sensors".to_string(), 0)]);
    let text = m.encode().expect("encode");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_normlake_exports() {
    let exported = exported_series();
    assert!(
        exported.contains("normlake_records_consumed_total"),
        "{exported:?}"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&read(&deploy().join("grafana/dashboards/normlake.json")))
            .expect("the dashboard is valid JSON");
    let ds: serde_norway::Value = serde_norway::from_str(&read(
        &deploy().join("grafana/provisioning/datasources/prometheus.yml"),
    ))
    .expect("datasource YAML");
    let uid = ds["datasources"][0]["uid"]
        .as_str()
        .expect("datasource uid");
    let mut queried = BTreeSet::new();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    for p in panels {
        assert_eq!(p["datasource"]["uid"], uid, "{}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("normlake_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    exported.contains(&name),
                    "panel {} queries {name}, which normlake does not export",
                    p["title"]
                );
                queried.insert(name.clone());
                rest = &rest[i + name.len()..];
            }
        }
    }
    for must in [
        "normlake_records_consumed_total",
        "normlake_consumer_lag_messages",
        "normlake_dead_letters_total",
        "normlake_latency_seconds_bucket",
        "normlake_files_committed_total",
        "normlake_committed_bytes_total",
        "normlake_watermark_lag_seconds",
        "normlake_last_commit_timestamp_seconds",
    ] {
        assert!(queried.contains(must), "the dashboard shows {must}");
    }
    // The provisioning points at the directory the dashboards are mounted in.
    let prov: serde_norway::Value = serde_norway::from_str(&read(
        &deploy().join("grafana/provisioning/dashboards/normlake.yml"),
    ))
    .expect("provider YAML");
    let path = prov["providers"][0]["options"]["path"]
        .as_str()
        .expect("path");
    let (c, _) = compose();
    let grafana = services(&c)["grafana"].clone();
    assert!(
        binds(&grafana)
            .iter()
            .any(|(src, dst)| dst == path && src == "./grafana/dashboards"),
        "grafana mounts the dashboards at {path}"
    );
}

#[test]
fn the_job_registers_its_table_in_the_metastore_trino_reads() {
    let (c, _) = compose();
    let (_, cfg, _) = stack_config(&c);
    let m = cfg.lake.metastore.as_ref().expect("[lake.metastore]");
    assert_eq!(m.uri.list(), ["thrift://hive-metastore:9083"]);
    assert!(c.services.0.contains_key("hive-metastore"));
    let location = format!(
        "s3a://{}/{}",
        cfg.lake.root.trim_start_matches("s3://"),
        cfg.lake.table
    );
    assert_eq!(m.location.as_deref(), Some(location.as_str()));
    assert!(
        !c.services.0.contains_key("trino-sync"),
        "no polling loop: the job registers partitions itself"
    );
    let catalog = read(&deploy().join("trino/catalog/lake.properties"));
    assert!(catalog.contains("connector.name=hive"));
    assert!(catalog.contains("thrift://hive-metastore:9083"));
    assert!(catalog.contains("s3.endpoint=http://minio:9000"));
}

/// The services' raw YAML definitions.
fn raw_services(raw: &serde_norway::Value) -> Vec<(String, serde_norway::Value)> {
    raw.get("services")
        .and_then(|s| s.as_mapping())
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().expect("name").to_string(), v.clone()))
        .collect()
}

fn strings(v: Option<&serde_norway::Value>) -> Vec<String> {
    match v {
        Some(serde_norway::Value::Sequence(items)) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_string())
            .collect(),
        Some(serde_norway::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Compose replaces `$$` with `$` before the container sees a command.
fn as_compose_passes_it(script: &str) -> String {
    script.replace("$$", "$")
}

/// `shell -n`: parse without running; the error text when it does not parse.
fn parse_shell(shell: &str, script: Option<&str>, file: Option<&Path>) -> Result<(), String> {
    let mut cmd = std::process::Command::new(shell);
    cmd.arg("-n");
    match (script, file) {
        (Some(s), _) => cmd.arg("-c").arg(s),
        (None, Some(f)) => cmd.arg(f),
        (None, None) => return Ok(()),
    };
    let out = cmd.output().unwrap_or_else(|e| panic!("run {shell}: {e}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// A shell command of the stack: where it is, the shell that runs it, and the script
/// (inline) or the host file mounted as the script.
struct ShellCommand {
    place: String,
    shell: String,
    script: Result<String, PathBuf>,
}

fn shell_commands() -> Vec<ShellCommand> {
    let (c, raw) = compose();
    let svcs = services(&c);
    let mut found = Vec::new();
    let mut add = |place: String, shell: String, script: Result<String, PathBuf>| {
        found.push(ShellCommand {
            place,
            shell,
            script,
        })
    };
    let shells = ["/bin/sh", "sh", "/bin/bash", "bash"];
    for (name, def) in raw_services(&raw) {
        let entry = strings(def.get("entrypoint"));
        let command = strings(def.get("command"));
        let shell = entry
            .first()
            .map(|s| s.rsplit('/').next().unwrap_or(s).to_string());
        match (shell, entry.get(1).map(String::as_str)) {
            (Some(sh), Some("-c")) if shells.contains(&entry[0].as_str()) => {
                let script = entry.get(2).or(command.first()).expect("a script");
                add(
                    format!("{name} command"),
                    sh,
                    Ok(as_compose_passes_it(script)),
                );
            }
            (Some(sh), Some(path)) if shells.contains(&entry[0].as_str()) => {
                let (host, _) = binds(&svcs[&name])
                    .into_iter()
                    .find(|(_, dst)| dst == path)
                    .unwrap_or_else(|| panic!("{name} runs {path}, which is not mounted"));
                add(format!("{name} command"), sh, Err(deploy().join(host)));
            }
            _ => {}
        }
        let test = strings(def.get("healthcheck").and_then(|h| h.get("test")));
        match test.first().map(String::as_str) {
            Some("CMD-SHELL") => add(
                format!("{name} health check"),
                "sh".into(),
                Ok(as_compose_passes_it(&test[1])),
            ),
            Some("CMD") if test.get(2).map(String::as_str) == Some("-c") => add(
                format!("{name} health check"),
                test[1].clone(),
                Ok(as_compose_passes_it(&test[3])),
            ),
            _ => {}
        }
    }
    found
}

#[test]
fn every_shell_command_parses() {
    let commands = shell_commands();
    assert!(commands.len() >= 5, "the stack's scripts are found");
    let mut broken = Vec::new();
    for c in &commands {
        let parsed = match &c.script {
            Ok(script) => parse_shell(&c.shell, Some(script), None),
            Err(file) => parse_shell(&c.shell, None, Some(file)),
        };
        if let Err(e) = parsed {
            broken.push(format!("{} ({}): {e}\n{:?}", c.place, c.shell, c.script));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n\n"));
}

#[test]
fn a_folded_yaml_script_with_a_more_indented_line_is_caught() {
    // The shape that once kept the stack's metastore from starting: YAML keeps the newline
    // before a more-indented line of a folded scalar, and the shell then sees `for … in a`
    // end at the line break.
    let yaml = "command: >-\n  for j in a\n           b; do\n    echo $j;\n  done\n";
    let v: serde_norway::Value = serde_norway::from_str(yaml).expect("yaml");
    let script = v.get("command").and_then(|c| c.as_str()).expect("script");
    assert!(parse_shell("sh", Some(script), None).is_err(), "{script:?}");
}

/// The source paths the Dockerfile's build stage copies into the build (relative to the
/// repository root, which is the build context).
fn build_stage_copies() -> Vec<String> {
    let dockerfile = read(&deploy().join("Dockerfile"));
    let stage: Vec<&str> = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("FROM "))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("FROM "))
        .map(|(_, l)| l)
        .collect();
    stage
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[1..parts.len() - 1]
                .iter()
                .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every file `include_str!` / `include_bytes!` reads, relative to the repository root.
fn included_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            included_files(&path, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = read(&path);
        for macro_name in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = &text[at + macro_name.len()..];
                let target = &rest[..rest.find('"').expect("closing quote")];
                let full = path.parent().expect("dir").join(target);
                let normal = normalize(&full);
                let rel = normal.strip_prefix(ROOT).expect("inside the repository");
                out.push(rel.display().to_string());
            }
        }
    }
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn the_image_build_stage_holds_every_file_the_build_reads() {
    let copied = build_stage_copies();
    let covered = |f: &str| {
        copied
            .iter()
            .any(|c| f == c || f.starts_with(&format!("{c}/")))
    };
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    needed.push("src/main.rs".into());
    if Path::new(ROOT).join("build.rs").exists() {
        needed.push("build.rs".into());
    }
    included_files(&Path::new(ROOT).join("src"), &mut needed);
    // Cargo reads every target the manifest declares, benches included.
    let manifest: toml::Table = read(&Path::new(ROOT).join("Cargo.toml"))
        .parse()
        .expect("Cargo.toml");
    for (kind, dir) in [
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ] {
        for t in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let name = t.get("name").and_then(|n| n.as_str()).expect("target name");
            let path = t
                .get("path")
                .and_then(|p| p.as_str())
                .map_or(format!("{dir}/{name}.rs"), str::to_string);
            needed.push(path);
        }
    }
    let missing: Vec<&String> = needed.iter().filter(|f| !covered(f)).collect();
    assert!(
        missing.is_empty(),
        "the build stage copies {copied:?} but the build reads {missing:?}"
    );
    assert!(
        needed.iter().any(|f| f == "deploy/normlake.toml"),
        "{needed:?}"
    );
}

/// Where images may come from, with the reason each registry serves them.
const REGISTRIES: [(&str, &str, &str); 8] = [
    (
        "docker.io",
        "confluentinc/cp-schema-registry",
        "Confluent publishes its Schema Registry image on Docker Hub",
    ),
    (
        "docker.io",
        "apache/",
        "Apache Kafka and Apache Hive publish their official images on Docker Hub",
    ),
    (
        "docker.io",
        "trinodb/trino",
        "Trino publishes its server image on Docker Hub",
    ),
    (
        "docker.io",
        "prom/prometheus",
        "Prometheus publishes its images on Docker Hub (and quay.io)",
    ),
    (
        "docker.io",
        "grafana/grafana",
        "Grafana publishes its images on Docker Hub",
    ),
    (
        "quay.io",
        "minio/",
        "MinIO removed minio/minio and minio/mc from Docker Hub in September 2026; its Quay registry keeps the same tags",
    ),
    (
        "docker.io",
        "rust",
        "the Dockerfile's build stage: the Rust project's official image",
    ),
    (
        "docker.io",
        "debian",
        "the Dockerfile's runtime stage: Debian's official image",
    ),
];

/// (registry, repository, tag) of an image reference.
fn image_parts(image: &str) -> (String, String, Option<String>) {
    let (registry, rest) = match image.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            (host.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), image.to_string()),
    };
    match rest.rsplit_once(':') {
        Some((repo, tag)) => (registry, repo.to_string(), Some(tag.to_string())),
        None => (registry, rest, None),
    }
}

#[test]
fn every_image_comes_from_a_registry_that_serves_it_at_a_pinned_tag() {
    let (c, _) = compose();
    let mut images: Vec<(String, String)> = services(&c)
        .into_iter()
        .filter(|(_, s)| s.build_.is_none() && s.pull_policy.is_none())
        .filter_map(|(n, s)| s.image.map(|i| (n, i)))
        .collect();
    let dockerfile = read(&deploy().join("Dockerfile"));
    for line in dockerfile.lines().filter_map(|l| l.strip_prefix("FROM ")) {
        let image = line.split_whitespace().next().expect("an image");
        images.push(("Dockerfile".into(), image.to_string()));
    }
    assert!(images.len() >= 8, "{images:?}");
    for (name, image) in images {
        let (registry, repo, tag) = image_parts(&image);
        let allowed = REGISTRIES
            .iter()
            .any(|(r, prefix, _)| *r == registry && repo.starts_with(prefix));
        assert!(
            allowed,
            "{name}: {image} comes from {registry}, which is not known to serve {repo}"
        );
        assert!(
            tag.as_deref().is_some_and(|t| t != "latest"),
            "{name}: {image} must pin a tag"
        );
    }
    // The rule itself knows Docker Hub no longer serves MinIO.
    let (registry, repo, _) = image_parts("minio/minio:RELEASE.2025-04-22T22-12-26Z");
    assert!(
        !REGISTRIES
            .iter()
            .any(|(r, prefix, _)| *r == registry && repo.starts_with(prefix))
    );
}
