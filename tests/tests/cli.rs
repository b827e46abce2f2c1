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
        "--log-disk-reserve",
        "--write-timeout",
        "--idempotency-window",
        "--idempotency-max-keys",
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
        "--https-certificate",
        "--https-private-key",
        "--peer-ca",
        "--peer-certificate",
        "--peer-private-key",
        "--peer-plaintext",
        "--udp-bind",
        "--udp-database",
        "--udp-retention-policy",
        "--udp-precision",
        "--udp-batch-size",
        "--udp-batch-timeout",
        "--udp-batch-pending",
        "--udp-read-buffer",
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
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--udp-bind",
                "127.0.0.1:8189",
            ],
            "udp_bind needs udp_database",
        ),
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--udp-bind",
                "127.0.0.1:8089",
                "--udp-database",
                "telegraf",
            ],
            "is the peer listener's port",
        ),
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--idempotency-window",
                "0s",
            ],
            "idempotency_window must be between 1s and 7d",
        ),
        (
            vec![
                "--id",
                "1",
                "--peer",
                "1=127.0.0.1:8089",
                "--idempotency-max-keys",
                "0",
            ],
            "idempotency_max_keys must be between 1 and 1000000",
        ),
    ] {
        let mut args = args.clone();
        // Peer links are settled, so that each case fails on its own setting.
        args.extend(["--data-dir", &data, "--peer-plaintext"]);
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
fn bad_certificate_files_are_named_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = harness::tls::Ca::new(d, "ca").unwrap();
    let localhost = ["127.0.0.1".parse().unwrap()];
    let node = ca.issue(d, "node", &localhost).unwrap();
    let other = ca.issue(d, "other", &localhost).unwrap();
    std::fs::write(d.join("garbage.pem"), "not pem at all").unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let (cert, key, ca) = (path(&node.cert), path(&node.key), path(&ca.cert));
    let (garbage, missing) = (path(&d.join("garbage.pem")), path(&d.join("missing.pem")));
    let other_key = path(&other.key);
    let data = d.join("data");
    let peer = |ca: &str, cert: &str, key: &str| {
        [
            "--peer-ca",
            ca,
            "--peer-certificate",
            cert,
            "--peer-private-key",
            key,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let https = |cert: &str, key: &str| {
        [
            "--https-certificate",
            cert,
            "--https-private-key",
            key,
            "--peer-plaintext",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    for (flags, expect) in [
        (
            https(&missing, &key),
            format!("cannot read the certificate {missing}"),
        ),
        (
            https(&garbage, &key),
            format!("the certificate {garbage} holds no PEM certificate"),
        ),
        (
            https(&cert, &garbage),
            format!("the private key {garbage} holds no PEM private key"),
        ),
        (
            https(&cert, &other_key),
            format!(
                "the certificate {cert} and the private key {other_key} cannot be used together"
            ),
        ),
        (
            peer(&garbage, &cert, &key),
            format!("the peer CA file {garbage} holds no PEM certificate"),
        ),
        (
            peer(&ca, &cert, &missing),
            format!("cannot read the peer private key {missing}"),
        ),
        (
            peer(&ca, &key, &key),
            format!("the peer certificate {key} holds no PEM certificate"),
        ),
    ] {
        let mut args: Vec<String> = ["--id", "1", "--peer", "1=127.0.0.1:8089", "--data-dir"]
            .map(str::to_owned)
            .to_vec();
        args.push(path(&data));
        args.extend(flags);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, text) = run(&args);
        assert_ne!(code, 0, "{args:?} was accepted");
        assert!(
            text.contains(&expect),
            "{args:?}: expected {expect:?} in:\n{text}"
        );
        assert!(!data.exists(), "{args:?}: the data directory was created");
    }
}

#[test]
fn plain_text_peer_links_need_saying_so_and_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let base = [
        "--id",
        "1",
        "--peer",
        "1=127.0.0.1:8089",
        "--data-dir",
        &data,
    ];
    let (code, text) = run(&base);
    assert_ne!(code, 0);
    assert!(text.contains("peer links need mutual TLS"), "{text}");

    // With the setting, the node starts, and says at once what it means. (Nothing listens on
    // 127.0.0.1:1, so the node never becomes ready; it is stopped once it has said it.)
    let mut child = Command::new(gateway_binary())
        .args(base)
        .args([
            "--peer-plaintext",
            "--listen",
            "127.0.0.1:0",
            "--peer-listen",
            "127.0.0.1:0",
        ])
        .args(["--influxd-url", "http://127.0.0.1:1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut warned = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("peer links are plain text") && l.contains("anyone") => {
                warned = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        warned,
        "no warning about plain-text peer links in the first lines of output"
    );
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
