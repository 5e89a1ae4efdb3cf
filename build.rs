//! Records the git revision the binary is built from, for `normlake_build_info` (from
//! `NORMLAKE_GIT_REVISION` when set, as in a container build without `.git`; "unknown" when
//! neither is there).

fn main() {
    println!("cargo:rerun-if-env-changed=NORMLAKE_GIT_REVISION");
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let revision = std::env::var("NORMLAKE_GIT_REVISION").ok().or_else(|| {
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    if let Some(r) = revision.filter(|r| !r.is_empty()) {
        println!("cargo:rustc-env=NORMLAKE_GIT_REVISION={r}");
    }
}
