//! The Debian package, installed for real (root only; skipped otherwise): built by
//! `scripts/package`, or taken from `INFLUX_GATEWAY_DEB`. Its control data and contents; after
//! `dpkg -i`, the service's user and data directory, the unit as `systemd-analyze verify` reads
//! it, and every setting of `--help` in the installed configuration. Then the installed binary,
//! run as the unit runs it (its user, its ExecStart with the installed configuration) with only
//! the addresses, the data directory and the peer security overridden, next to a real influxd:
//! READY=1 on a NOTIFY_SOCKET once it serves, a write and a query through it, STOPPING=1 and a
//! clean exit on SIGTERM. Last, `dpkg -r` keeps the configuration and the data, `dpkg -P`
//! removes them.
//!
//! A package already installed is purged first, unless its data directory holds a Raft log:
//! that is a real node, which the test refuses to touch. Whatever the test installed or
//! created is purged or deleted when it ends, failed or not.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use harness::Process;
use nix::sys::signal::Signal;
use tests::cluster::{Slot, API_PORT, INFLUXD_PORT, PEER_PORT};
use tests::{wait_until, Http, Influxd};

const PACKAGE: &str = "influx-gateway";
const USER: &str = "influx-gateway";
const BINARY: &str = "/usr/bin/influx-gateway";
const UNIT: &str = "/usr/lib/systemd/system/influx-gateway.service";
const CONFIG: &str = "/etc/influx-gateway.toml";
const DATA_DIR: &str = "/var/lib/influx-gateway";
/// A prebuilt .deb to test instead of building one.
const DEB_ENV: &str = "INFLUX_GATEWAY_DEB";

/// From start to READY=1: opening an empty log and binding take well under a second.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A single node elects itself within 10-20 Raft ticks of 100 ms.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn the_debian_package_installs_a_service_that_serves_and_is_removed_cleanly() {
    if fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!("SKIPPED: installing the Debian package needs root");
        return;
    }
    let deb = package();
    check_the_package_file(&deb);

    purge_a_leftover_install();
    // Dropped last: whatever happens below, the machine is left as it was found.
    let _restore = Restore {
        user_existed: passwd_entry(USER).is_some(),
    };
    run("dpkg", &["--install", path_str(&deb)]);
    assert_eq!(dpkg_status().as_deref(), Some("ii"), "after dpkg -i");

    let user = check_the_user_and_files();
    let exec_start = check_the_unit();
    check_every_setting_is_in_the_installed_configuration();
    run_the_installed_service(&exec_start, &user);

    run("dpkg", &["--remove", PACKAGE]);
    assert_eq!(dpkg_status().as_deref(), Some("rc"), "after dpkg -r");
    for gone in [BINARY, UNIT] {
        assert!(!Path::new(gone).exists(), "{gone} is left after dpkg -r");
    }
    for kept in [CONFIG, DATA_DIR] {
        assert!(Path::new(kept).exists(), "{kept} went with dpkg -r");
    }
    run("dpkg", &["--purge", PACKAGE]);
    assert_eq!(dpkg_status(), None, "after dpkg -P");
    for gone in [CONFIG, DATA_DIR] {
        assert!(!Path::new(gone).exists(), "{gone} is left after dpkg -P");
    }
    // Debian's practice: a system user stays, as files it owned may remain elsewhere.
    assert!(passwd_entry(USER).is_some(), "the user went with dpkg -P");
}

/// The .deb under test: `INFLUX_GATEWAY_DEB`, or one `scripts/package` builds in this
/// build's target directory (a release build, reused when up to date).
fn package() -> PathBuf {
    if let Some(deb) = std::env::var_os(DEB_ENV) {
        let deb = PathBuf::from(deb);
        assert!(deb.is_file(), "{DEB_ENV}={} is not a file", deb.display());
        return deb;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace");
    let script = workspace.join("scripts/package");
    // --fast: lighter compression, the same contents.
    let out = Command::new(&script)
        .arg("--fast")
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/package failed ({}):\n{stdout}",
        out.status
    );
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.is_file(),
        "scripts/package printed no .deb path:\n{stdout}"
    );
    deb
}

fn check_the_package_file(deb: &Path) {
    let deb = path_str(deb);
    let field = |name: &str| run("dpkg-deb", &["--field", deb, name]).trim().to_owned();
    assert_eq!(field("Package"), PACKAGE);
    let depends = field("Depends");
    for needed in ["librocksdb7.8", "libc6", "adduser"] {
        assert!(
            depends.contains(needed),
            "Depends lacks {needed}: {depends}"
        );
    }
    assert!(field("Recommends").contains("influxdb"));
    let conffiles = run("dpkg-deb", &["--info", deb, "conffiles"]);
    assert!(
        conffiles.lines().any(|l| l.trim() == CONFIG),
        "{CONFIG} is not a conffile: {conffiles}"
    );
    let contents = run("dpkg-deb", &["--contents", deb]);
    for (mode, path) in [
        ("-rwxr-xr-x", BINARY),
        ("-rw-r--r--", UNIT),
        ("-rw-r-----", CONFIG),
    ] {
        let listed = contents.lines().any(|l| {
            l.starts_with(mode) && l.ends_with(&format!(".{path}")) && l.contains(" 0/0 ")
        });
        assert!(
            listed,
            "no {mode} root-owned {path} in the package:\n{contents}"
        );
    }
}

/// A package installed before the test (an earlier run that was killed) is purged, unless it
/// holds a node's log.
fn purge_a_leftover_install() {
    if dpkg_status().is_none() {
        return;
    }
    let log = Path::new(DATA_DIR).join("raft-log");
    assert!(
        !log.exists(),
        "{PACKAGE} is installed and {} holds a Raft log: this is a real node, and this test \
         would purge it; run the test on another machine",
        log.display()
    );
    run("dpkg", &["--purge", PACKAGE]);
}

/// The service's account, from `getent passwd`.
struct User {
    uid: u32,
    gid: u32,
}

fn check_the_user_and_files() -> User {
    let entry = passwd_entry(USER).unwrap_or_else(|| panic!("no user {USER} after dpkg -i"));
    let fields: Vec<&str> = entry.trim().split(':').collect();
    let [_, _, uid, gid, _, home, shell] = fields[..] else {
        panic!("unexpected passwd entry {entry:?}");
    };
    let user = User {
        uid: uid.parse().unwrap(),
        gid: gid.parse().unwrap(),
    };
    assert!(user.uid < 1000, "{USER} is not a system user: {entry}");
    assert_eq!((home, shell), (DATA_DIR, "/usr/sbin/nologin"), "{entry}");

    let data = fs::metadata(DATA_DIR).unwrap_or_else(|e| panic!("{DATA_DIR}: {e}"));
    assert!(data.is_dir());
    assert_eq!(
        (data.uid(), data.gid()),
        (user.uid, user.gid),
        "{DATA_DIR}'s owner"
    );
    assert_eq!(data.mode() & 0o777, 0o750, "{DATA_DIR}'s mode");
    let config = fs::metadata(CONFIG).unwrap_or_else(|e| panic!("{CONFIG}: {e}"));
    assert_eq!(
        (config.uid(), config.gid()),
        (0, user.gid),
        "{CONFIG}'s owner"
    );
    assert_eq!(config.mode() & 0o777, 0o640, "{CONFIG}'s mode");
    user
}

/// Verifies the installed unit and returns its ExecStart, split into words.
fn check_the_unit() -> Vec<String> {
    assert!(
        Path::new("/usr/bin/systemd-analyze").exists(),
        "systemd-analyze is missing: scripts/deps installs it (Debian package systemd)"
    );
    let out = output("systemd-analyze", &["verify", UNIT]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains(PACKAGE),
        "systemd-analyze verify {UNIT} ({}):\n{stderr}",
        out.status
    );
    let unit = fs::read_to_string(UNIT).unwrap();
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let has = |key: &str, value: &str| settings.contains(&(key, value));
    for (key, value) in [
        ("Type", "notify"),
        ("User", USER),
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", DATA_DIR),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Wants", "network-online.target influxdb.service"),
        ("After", "network-online.target influxdb.service"),
    ] {
        assert!(has(key, value), "{UNIT} lacks {key}={value}:\n{unit}");
    }
    let exec_start: Vec<String> = settings
        .iter()
        .find(|(k, _)| *k == "ExecStart")
        .unwrap_or_else(|| panic!("no ExecStart in {UNIT}"))
        .1
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(exec_start[0], BINARY, "ExecStart runs another program");
    assert!(
        exec_start.windows(2).any(|w| w == ["--config", CONFIG]),
        "ExecStart does not read {CONFIG}: {exec_start:?}"
    );
    exec_start
}

/// Every flag of the installed binary's `--help` is a setting of the installed configuration.
fn check_every_setting_is_in_the_installed_configuration() {
    let help = run(BINARY, &["--help"]);
    let config = fs::read_to_string(CONFIG).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .map(|l| l.trim_start())
        // An option's line is "--name <VALUE>", or "-c, --name <VALUE>" with a short form.
        .map(|l| {
            l.split_once(", ")
                .map_or(l, |(short, rest)| if short.len() == 2 { rest } else { l })
        })
        .filter_map(|l| l.strip_prefix("--"))
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .filter(|f| !matches!(*f, "config" | "help" | "version"))
        .collect();
    assert!(flags.len() > 30, "too few flags found in --help:\n{help}");
    for flag in flags {
        let line = match flag {
            "peer" => "#[peers]".to_owned(),
            _ => format!("#{} = ", flag.replace('-', "_")),
        };
        assert!(
            config.lines().any(|l| l.starts_with(&line)),
            "--{flag} is not in {CONFIG} (as {line:?})"
        );
    }
}

/// Runs the installed binary as the unit would, with only what must differ here overridden,
/// next to a real influxd on this test's loopback address.
fn run_the_installed_service(exec_start: &[String], user: &User) {
    let slot = Slot::acquire();
    let ip = slot.ip(1);
    let dir = tempfile::tempdir().unwrap();
    let influxd = Influxd::start(&format!("{ip}:{INFLUXD_PORT}"), &dir.path().join("influxd"));

    // The service's own user must own its data directory, as it owns /var/lib/influx-gateway.
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data.path(), Some(user.uid), Some(user.gid)).unwrap();
    // systemd's notify socket is a datagram socket the service may write to.
    let notify_dir = tempfile::tempdir().unwrap();
    fs::set_permissions(notify_dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let socket = notify_dir.path().join("notify");
    let notify = UnixDatagram::bind(&socket).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o777)).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let api = format!("{ip}:{API_PORT}");
    let peer = format!("{ip}:{PEER_PORT}");
    let overrides = [
        "--id".to_owned(),
        "1".to_owned(),
        "--peer".to_owned(),
        format!("1={peer}"),
        "--peer-listen".to_owned(),
        peer.clone(),
        "--peer-plaintext".to_owned(),
        "--listen".to_owned(),
        api.clone(),
        "--data-dir".to_owned(),
        path_str(data.path()).to_owned(),
        "--influxd-url".to_owned(),
        influxd.url(),
        "--influxd-rpc".to_owned(),
        influxd.rpc_addr(),
    ];
    let mut gateway = Process::new(
        "the installed gateway",
        &exec_start[0],
        dir.path().join("gateway.log"),
    )
    .prefix([
        "setpriv",
        "--reuid",
        USER,
        "--regid",
        USER,
        "--init-groups",
        "--",
    ])
    .args(&exec_start[1..])
    .args(&overrides)
    .env("NOTIFY_SOCKET", path_str(&socket));
    gateway.start().unwrap_or_else(|e| panic!("{e}"));

    let seen = await_notification(&notify, &mut gateway, "READY=1", READY_TIMEOUT);
    // READY=1 promises an API that listens: no wait here.
    let http = Http::new(&api);
    let ping = http
        .get("/ping")
        .unwrap_or_else(|e| panic!("after {seen:?}: {e}"));
    assert_eq!(ping.status, 204, "/ping after READY=1: {}", ping.body);

    wait_until(
        "CREATE DATABASE through the installed gateway",
        LEADER_TIMEOUT,
        || {
            let r = http
                .query("", "CREATE DATABASE pkg")
                .map_err(|e| e.to_string())?;
            (r.status == 200)
                .then_some(())
                .ok_or(format!("{}: {}", r.status, r.body))
        },
    );
    http.write_ok("db=pkg", "cpu,host=a usage=0.5 1000000000");
    let rows = http.rows("pkg", "cpu");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][2], 0.5, "{rows:?}");
    assert_eq!(
        influxd.http().rows("pkg", "cpu"),
        rows,
        "influxd holds the write"
    );

    let log = data.path().join("raft-log");
    let owner = fs::metadata(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert_eq!(owner.uid(), user.uid, "the log was not written as {USER}");

    gateway.signal(Signal::SIGTERM).unwrap();
    let status = wait_until(
        "the installed gateway to exit on SIGTERM",
        EXIT_TIMEOUT,
        || gateway.exited().ok_or("running"),
    );
    assert!(
        status.success(),
        "exit on SIGTERM: {status}\n{}",
        gateway.log()
    );
    // It has exited: everything it sent is queued already.
    notify.set_nonblocking(true).unwrap();
    let mut after = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.recv(&mut buf) {
        after.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        after.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM: {after:?}"
    );
}

/// Reads `socket` until a datagram holds the line `want`; fails at once if the gateway exits,
/// with its log. Returns every datagram read.
fn await_notification(
    socket: &UnixDatagram,
    gateway: &mut Process,
    want: &str,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let found = message.lines().any(|l| l == want);
                seen.push(message);
                if found {
                    return seen;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the notify socket: {e}"),
        }
        if let Some(status) = gateway.exited() {
            panic!(
                "the installed gateway exited ({status}) before {want}; it logged:\n{}",
                gateway.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no {want} on NOTIFY_SOCKET within {timeout:?} (got {seen:?}); the gateway logged:\n{}",
            gateway.log()
        );
    }
}

/// Puts the machine back: the package purged, the user deleted if the test's install made it.
struct Restore {
    user_existed: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if dpkg_status().is_some() {
            let out = output("dpkg", &["--purge", PACKAGE]);
            if !out.status.success() {
                eprintln!("cleaning up: dpkg --purge {PACKAGE} failed: {out:?}");
            }
        }
        if !self.user_existed && passwd_entry(USER).is_some() {
            let _ = output("userdel", &[USER]);
        }
        if !self.user_existed && output("getent", &["group", USER]).status.success() {
            let _ = output("groupdel", &[USER]);
        }
    }
}

/// dpkg's two-letter state of the package ("ii" installed, "rc" removed with its
/// configuration), `None` when dpkg does not know it.
fn dpkg_status() -> Option<String> {
    let out = output("dpkg-query", &["-W", "-f=${db:Status-Abbrev}", PACKAGE]);
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !status.is_empty() && !status.starts_with('u')).then_some(status)
}

fn passwd_entry(user: &str) -> Option<String> {
    let out = output("getent", &["passwd", user]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program` to completion without a terminal (dpkg must not ask anything).
fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// As [`output`], and it must succeed: its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = output(program, args);
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}
