//! Secrets never reach a log line: a run with debug logging (which dumps the configuration)
//! and `validate-config` print neither the SASL password, the dead-letter producer's password
//! nor the S3 secret key, while showing that they were there (`<redacted>`). The SASL password
//! comes from the environment through `${VAR}`, the dead-letter one from a secret file, as
//! operators pass them.

mod common;

use std::process::Command;

use common::broker::Broker;
use common::job::{self, Job};
use common::s3::{S3Server, SECRET_KEY as S3_SECRET};

const KAFKA_SECRET: &str = "kafka-Secr3t-value";
const DLQ_SECRET: &str = "dlq-Secr3t-value";
const PASSWORD_VAR: (&str, &str) = ("NORMLAKE_TEST_SASL_PASSWORD", KAFKA_SECRET);

#[tokio::test(flavor = "multi_thread")]
async fn no_log_line_contains_a_secret() {
    let broker = Broker::start();
    let s3 = S3Server::start(&["lake"]);
    broker.create_topic("sec", 1).await;
    broker.create_topic("sec-dlq", 1).await;
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || job::produce(&addr, "sec", 500))
        .await
        .expect("produce");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = std::path::Path::new("s3://lake/secrets");
    let secret_file = dir.path().join("dlq-password");
    std::fs::write(&secret_file, format!("{DLQ_SECRET}\n")).expect("secret file");
    // The passwords are set without enabling SASL, so the broker need not support it;
    // librdkafka still holds them.
    let text = job::config(
        &broker.addr(),
        "sec",
        "sec-g",
        root,
        "\"sasl.username\" = \"normlake\"\n\"sasl.password\" = \"${NORMLAKE_TEST_SASL_PASSWORD}\"",
    ) + &s3.config_section()
        + &format!(
            "\n[dead_letter]\ndestination = \"kafka\"\ntopic = \"sec-dlq\"\n[dead_letter.properties]\n\"sasl.password_file\" = \"{}\"\n",
            secret_file.display()
        );
    let cfg = job::write_config(dir.path(), "sec.toml", &text);
    let log = dir.path().join("job.log");
    let mut job = Job::start_env(&cfg, true, &log, &[PASSWORD_VAR]);
    // RUST_LOG=info is the job default; run again at debug and trace for the dumps.
    assert_eq!(job.wait(std::time::Duration::from_secs(120)), Some(true));
    for level in ["debug", "trace"] {
        let out = Command::new(env!("CARGO_BIN_EXE_normlake"))
            .args(["run", "--until-end", "--metrics-listen", "off", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", level)
            .env(PASSWORD_VAR.0, PASSWORD_VAR.1)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("configuration loaded") && text.contains("<redacted>"),
            "the {level} log dumps the configuration"
        );
        assert!(
            !text.contains(KAFKA_SECRET) && !text.contains(DLQ_SECRET) && !text.contains(S3_SECRET),
            "{level}"
        );
    }
    // validate-config takes its file like every command: -c, NORMLAKE_CONFIG, or an argument.
    for how in ["-c", "env", "arg"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_normlake"));
        cmd.arg("validate-config")
            .env(PASSWORD_VAR.0, PASSWORD_VAR.1);
        match how {
            "-c" => cmd.arg("-c").arg(&cfg),
            "env" => cmd.env("NORMLAKE_CONFIG", &cfg),
            _ => cmd.arg(&cfg),
        };
        let out = cmd.output().expect("validate-config");
        assert!(
            out.status.success(),
            "{how}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("sasl.password = <redacted>"), "{shown}");
        assert!(shown.contains("secret_access_key = <redacted>"), "{shown}");
        assert!(
            !shown.contains(KAFKA_SECRET)
                && !shown.contains(DLQ_SECRET)
                && !shown.contains(S3_SECRET)
        );
    }
    // Without the variable the file is refused, naming the variable and not a value.
    let out = Command::new(env!("CARGO_BIN_EXE_normlake"))
        .args(["validate-config", "-c"])
        .arg(&cfg)
        .env_remove(PASSWORD_VAR.0)
        .output()
        .expect("validate-config");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("NORMLAKE_TEST_SASL_PASSWORD"), "{said}");
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        !logged.contains(KAFKA_SECRET)
            && !logged.contains(DLQ_SECRET)
            && !logged.contains(S3_SECRET)
    );
    // The run did write to the bucket (so the S3 client held and used the secret).
    let written = s3.store("s3://lake/secrets").list("t").expect("list");
    assert!(
        written.iter().any(|k| k.ends_with(".parquet")),
        "the job wrote to S3: {written:?}"
    );
}
