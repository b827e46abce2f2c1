//! /metrics as Prometheus's own tooling reads it: `promtool check metrics` (Debian's
//! `prometheus` package, installed by scripts/deps) finds nothing to object to on a real node,
//! and the process's figures (`process_*`) are there and plausible.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use tests::metrics::{metric, scrape};
use tests::Cluster;

/// promtool's verdict on `text`: its exit status and what it said.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("run promtool: {e} (Debian's prometheus package: scripts/deps installs it)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn metrics_pass_promtool_and_report_the_process() {
    let c = Cluster::start(3);
    // Some traffic first, so that the labelled families have samples to be checked.
    c.create_database(1, "metrics");
    for n in &c.nodes {
        n.api().write_ok("db=metrics", "cpu value=1");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    for n in &c.nodes {
        let text = scrape(n);
        let (ok, said) = promtool_check(&text);
        assert!(
            ok,
            "promtool check metrics on node {}: {said}\n{text}",
            n.id
        );

        // Every family named as a count is typed as one.
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split(' ').skip(2);
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            assert_eq!(
                name.ends_with("_total"),
                kind == "counter",
                "node {}: {line}",
                n.id
            );
        }

        let rss = metric(&text, "process_resident_memory_bytes");
        let vsz = metric(&text, "process_virtual_memory_bytes");
        assert!(
            rss > 1e6 && vsz >= rss,
            "node {}: rss {rss}, vsz {vsz}",
            n.id
        );
        let fds = metric(&text, "process_open_fds");
        let max_fds = metric(&text, "process_max_fds");
        // Listeners, the log's files, peer links: more than a handful, within the limit.
        assert!(
            fds > 5.0 && fds < max_fds,
            "node {}: {fds} of {max_fds}",
            n.id
        );
        let started = metric(&text, "process_start_time_seconds");
        let age = now.as_secs_f64() - started;
        // The cluster started within the last minutes; the figure is whole seconds.
        assert!(
            (-2.0..300.0).contains(&age),
            "node {}: started {age:.0} s ago",
            n.id
        );
        // Each node applied at least the write made through it, and waited for influxd to
        // answer it: some time, never more than the node's age.
        let requests = metric(&text, "gateway_apply_influxd_requests_total");
        let waited = metric(&text, "gateway_apply_influxd_write_seconds_total");
        assert!(
            requests >= 1.0 && waited > 0.0 && waited < age + 2.0,
            "node {}: {requests} influxd requests, {waited} s waiting for writes",
            n.id
        );
        // Whole seconds too (the prometheus crate truncates), so a young node may show 0.
        let cpu = metric(&text, "process_cpu_seconds_total");
        let cores = std::thread::available_parallelism().unwrap().get() as f64;
        assert!(
            (0.0..=(age + 2.0) * cores).contains(&cpu),
            "node {}: {cpu} s of CPU in {age:.0} s",
            n.id
        );
    }
}
