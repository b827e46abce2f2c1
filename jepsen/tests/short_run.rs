//! The short fault run CI can afford: 90 s of `--nemesis all` against a real cluster, with
//! the log trimmed as soon as every member applied it and capped at 4 MiB, so that wiped
//! nodes are seeded from a peer's influxd rather than rebuilt from the log, and with peer
//! links (seeds included) as mutual TLS.
//! It needs root and network namespaces, so it only runs when asked:
//! `cargo test -p jepsen --release -- --ignored` (or JEPSEN_TIME_LIMIT=SECS to change the
//! length). The gateway binary is built by the harness if missing.

use std::process::Command;

#[test]
#[ignore = "needs root and network namespaces; run with --ignored"]
fn short_run_with_every_nemesis_is_valid() {
    let limit = std::env::var("JEPSEN_TIME_LIMIT").unwrap_or_else(|_| "90".into());
    let results = std::env::var("JEPSEN_RESULTS").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("jepsen-results")
            .display()
            .to_string()
    });
    let mut args = vec![
        "test",
        "--time-limit",
        limit.as_str(),
        "--nemesis",
        "all",
        "--results",
        results.as_str(),
        "--gateway-arg=--log-retention=0s",
        "--gateway-arg=--log-max-size=4MiB",
        "--tls",
    ];
    let extra = std::env::var("JEPSEN_ARGS").unwrap_or_default();
    args.extend(extra.split_whitespace());
    let status = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .args(&args)
        .status()
        .expect("run the jepsen binary");
    assert!(
        status.success(),
        "jepsen test exited with {status}; see the run directory under {results}"
    );
}
