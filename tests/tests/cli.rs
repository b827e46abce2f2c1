//! The binary's surface: `--help` documents every setting, and a bad configuration is a clear
//! error and a non-zero exit before anything listens.

use std::process::Command;

use tests::cluster::gateway_binary;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(gateway_binary()).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn help_documents_every_setting() {
    let (code, help) = run(&["--help"]);
    assert_eq!(code, 0, "{help}");
    for flag in [
        "--config",
        "--id",
        "--listen",
        "--peer-listen",
        "--peer",
        "--join",
        "--data-dir",
        "--influxd-url",
        "--influxd-username",
        "--influxd-password",
        "--auth-enabled",
        "--memory-budget",
        "--write-timeout",
        "--max-body-size",
        "--max-connections",
        "--header-read-timeout",
        "--idle-timeout",
        "--body-read-timeout",
        "--max-header-size",
        "--max-headers",
        "--admin-api",
        "--raft-tick",
        "--log-level",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
    let (code, help) = run(&["members", "--help"]);
    assert_eq!(code, 0, "{help}");
    assert!(help.contains("add") && help.contains("remove") && help.contains("list"));
    assert!(
        help.contains("--username") && help.contains("--password"),
        "{help}"
    );
}

#[test]
fn bad_configurations_fail_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    for (args, expect) in [
        (vec!["--peer", "1=127.0.0.1:8089"], "node id is required"),
        (
            vec!["--id", "0", "--peer", "1=127.0.0.1:8089"],
            "positive integer",
        ),
        (
            vec!["--id", "2", "--peer", "1=127.0.0.1:8089"],
            "not in the peer list",
        ),
        (vec!["--id", "1", "--peer", "1=nowhere"], "HOST:PORT"),
        (vec!["--id", "1"], "no peers"),
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--influxd-url",
                "ftp://x",
            ],
            "http://",
        ),
        (
            vec!["--id", "1", "--peer", "1=127.0.0.1:8089", "--auth-enabled"],
            "influxd_username",
        ),
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--write-timeout",
                "soon",
            ],
            "soon",
        ),
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--max-connections",
                "0",
            ],
            "max_connections must be more than 0",
        ),
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--admin-api",
                "10.0.0.0/8,everyone",
            ],
            "\"everyone\" is not an address or a network",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--data-dir", &data]);
        let (code, text) = run(&args);
        assert_ne!(code, 0, "{args:?} was accepted");
        assert!(
            text.contains(expect),
            "{args:?}: expected {expect:?} in:\n{text}"
        );
    }
    // Nothing was created: the configuration was refused before anything started.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "id = 1\nwrite_timout = \"3s\"\n[peers]\n1 = \"127.0.0.1:8089\"\n",
    )
    .unwrap();
    let (code, text) = run(&["--config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(text.contains("write_timout"), "{text}");
}
