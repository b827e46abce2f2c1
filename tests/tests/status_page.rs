//! The status page (`GET /`) as an operator's browser shows it: headless Chromium (Debian's
//! `chromium`, installed by scripts/deps) loads a real node's page, lets its script refresh
//! it from `/status`, and hands back the DOM and a screenshot; what it shows must be what
//! `/status` says.

use std::collections::HashSet;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tests::{wait_until, Cluster};

/// Chromium's own limit: the page's script runs this long in virtual time (its 2 s refresh
/// fires twice), however fast the machine.
const VIRTUAL_TIME_MS: u32 = 5_000;
/// The longest a Chromium run may take in real time before the test gives up on it.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// One headless Chromium run with `args` after the common ones; its stdout. Killed (its whole
/// process group: the browser forks renderers) if it outlasts [`CHROMIUM_TIMEOUT`].
fn chromium(dir: &Path, args: &[String]) -> String {
    let profile = tempfile::Builder::new()
        .prefix("chromium-profile-")
        .tempdir_in(dir)
        .unwrap();
    let out_path = dir.join(format!("chromium-{}.out", rand::random::<u32>()));
    let err_path = out_path.with_extension("err");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            // Root in a container: the sandbox needs user namespaces it cannot have.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("run chromium: {e} (Debian's chromium package: scripts/deps installs it)")
        });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "chromium {args:?} did not finish within {CHROMIUM_TIMEOUT:?}; killed. stderr:\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever the browser left running in its group goes with it.
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let screenshot = args.iter().any(|a| a.starts_with("--screenshot"));
    assert!(
        status.success() && (screenshot || !out.is_empty()),
        "chromium {args:?} failed ({status}); stderr:\n{}",
        fs::read_to_string(&err_path).unwrap_or_default()
    );
    out
}

/// The page's DOM once its script ran.
fn dump_dom(dir: &Path, url: &str) -> String {
    chromium(dir, &["--dump-dom".into(), url.into()])
}

/// A 1200x900 screenshot of the page, once its script ran.
fn screenshot(dir: &Path, url: &str) -> PathBuf {
    let png = dir.join("page.png");
    let _ = fs::remove_file(&png);
    chromium(
        dir,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,900".into(),
            url.into(),
        ],
    );
    assert!(png.exists(), "chromium wrote no screenshot to {png:?}");
    png
}

/// The text of the element with `id`, a `<dd>` of the page.
fn field<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\">");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{dom}"))
        + open.len();
    let end = start + dom[start..].find("</dd>").expect("the element is closed");
    &dom[start..end]
}

/// A figure of the page as a number: it must be one.
fn number(dom: &str, id: &str) -> u64 {
    let text = field(dom, id);
    text.parse()
        .unwrap_or_else(|_| panic!("#{id} is {text:?}, not a number"))
}

/// The text of a member's cell (`class="m-{name}"`) in the members table.
fn member_cell<'a>(dom: &'a str, id: u64, name: &str) -> &'a str {
    let row_start = dom
        .find(&format!("<tr data-member=\"{id}\""))
        .unwrap_or_else(|| panic!("no row of member {id} in the page:\n{dom}"));
    let row = &dom[row_start..row_start + dom[row_start..].find("</tr>").unwrap()];
    let open = format!("<td class=\"m-{name}\">");
    let start = row
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {row}"))
        + open.len();
    &row[start..start + row[start..].find("</td>").unwrap()]
}

fn status(c: &Cluster, id: u64) -> Value {
    let r = c.node(id).api().get("/status").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn url(c: &Cluster, id: u64) -> String {
    format!("http://{}:{}/", c.node(id).ip, tests::cluster::API_PORT)
}

/// `value` lies between what `/status` said before the page was taken and after.
fn within(what: &str, value: u64, before: &Value, after: &Value) {
    let (lo, hi) = (before.as_u64().unwrap(), after.as_u64().unwrap());
    assert!(
        (lo..=hi).contains(&value),
        "{what}: the page shows {value}, /status said {lo} then {hi}"
    );
}

#[test]
fn the_page_shows_the_cluster_as_status_says_and_refreshes_itself() {
    let mut c = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    c.create_database(1, "ui");
    c.node(1).api().write_ok("db=ui", "cpu value=1");
    let leader = c.wait_for_leader(Duration::from_secs(10));
    let follower = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&id| id != leader)
        .unwrap();

    // The plain page, as curl gets it: complete without any script.
    let r = c.node(leader).api().get("/").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.header("content-security-policy").is_some());
    assert!(r.body.contains("data-rendered-by=\"server\""));
    assert!(r
        .body
        .contains(&format!("id=\"leader\">node {leader}</dd>")));
    assert_eq!(c.node(leader).api().get("/ui").unwrap().status, 200);

    // The leader's page after its script ran: every member, every figure /status gives.
    let before = status(&c, leader);
    let dom = dump_dom(dir.path(), &url(&c, leader));
    let after = status(&c, leader);
    assert!(
        dom.contains("data-rendered-by=\"script\""),
        "the script did not render the page:\n{dom}"
    );
    let refreshes: u64 = dom
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        refreshes >= 1,
        "the script never refreshed from /status:\n{dom}"
    );
    assert!(dom.contains("Refreshed from /status at"), "{dom}");

    assert_eq!(number(&dom, "node"), leader);
    assert_eq!(field(&dom, "leader"), format!("node {leader}"));
    assert!(field(&dom, "role").contains(">leader<"));
    within(
        "term",
        number(&dom, "term"),
        &before["raft"]["term"],
        &after["raft"]["term"],
    );
    within(
        "commit",
        number(&dom, "commit"),
        &before["raft"]["commit"],
        &after["raft"]["commit"],
    );
    within(
        "applied",
        number(&dom, "applied"),
        &before["applier"]["applied"],
        &after["applier"]["applied"],
    );
    within(
        "last index",
        number(&dom, "last-index"),
        &before["raft"]["last_index"],
        &after["raft"]["last_index"],
    );
    within(
        "first index",
        number(&dom, "log-first-index"),
        &before["log"]["first_index"],
        &after["log"]["first_index"],
    );
    number(&dom, "apply-lag");
    assert!(field(&dom, "influxd").contains(">up<"));
    assert!(dom.contains("None in progress."));
    // At least the election that made this leader.
    assert!(
        dom.contains(&format!("<td>node {leader}</td>")),
        "no leader change to node {leader}:\n{dom}"
    );

    let members = before["raft"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for (m, m_after) in members
        .iter()
        .zip(after["raft"]["members"].as_array().unwrap())
    {
        let id = m["id"].as_u64().unwrap();
        assert_eq!(member_cell(&dom, id, "id"), id.to_string());
        assert_eq!(member_cell(&dom, id, "addr"), c.peer_addr(id));
        assert_eq!(m["peer_addr"], json!(c.peer_addr(id)));
        for (cell, key) in [("matched", "matched"), ("applied", "applied")] {
            let shown: u64 = member_cell(&dom, id, cell)
                .parse()
                .unwrap_or_else(|_| panic!("member {id}'s {cell} is not a number:\n{dom}"));
            within(
                &format!("member {id} {cell}"),
                shown,
                &m[key],
                &m_after[key],
            );
        }
        let role = member_cell(&dom, id, "role");
        assert_eq!(
            role.contains(">leader<"),
            id == leader,
            "member {id}: {role}"
        );
    }

    // A follower's page: what it knows, and where the rest is.
    let dom = dump_dom(dir.path(), &url(&c, follower));
    assert!(dom.contains("data-rendered-by=\"script\""), "{dom}");
    assert_eq!(number(&dom, "node"), follower);
    assert_eq!(field(&dom, "leader"), format!("node {leader}"));
    assert!(
        dom.contains(&format!(
            "see the leader's page (node {leader}, peer address {}",
            c.peer_addr(leader)
        )),
        "{dom}"
    );
    for n in &c.nodes {
        assert_eq!(member_cell(&dom, n.id, "addr"), c.peer_addr(n.id));
        assert_eq!(member_cell(&dom, n.id, "matched"), "—");
    }

    // The screenshot is a page, not a blank window.
    let png = screenshot(dir.path(), &url(&c, leader));
    let (width, height, pixels) = decode_rgb(&png);
    assert_eq!((width, height), (1200, 900));
    let colours: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    let background = [0xf4, 0xf6, 0xf9];
    let drawn = pixels.iter().filter(|p| **p != background).count();
    assert!(
        colours.len() >= 16,
        "{} colours only in {png:?}",
        colours.len()
    );
    // Cards, tables and text cover a good part of the window.
    assert!(
        drawn * 10 >= pixels.len(),
        "{drawn} of {} pixels drawn in {png:?}",
        pixels.len()
    );

    // influxd down on the follower: its page says so, with the applier's reason.
    c.node_mut(follower).influxd.kill();
    wait_until(
        &format!("node {follower} to report its influxd down"),
        Duration::from_secs(30),
        || {
            // Entries to apply make the applier find out.
            let _ = c
                .node(leader)
                .api()
                .write("db=ui&consistency=any", "cpu value=2");
            match c.health(follower) {
                Some(h) if h["influxd"] == "down" => Ok(()),
                h => Err(h),
            }
        },
    );
    let dom = dump_dom(dir.path(), &url(&c, follower));
    assert!(dom.contains("data-rendered-by=\"script\""), "{dom}");
    assert!(
        field(&dom, "influxd").contains(">down<"),
        "influxd not shown down:\n{dom}"
    );
    if let Some(error) = status(&c, follower)["applier"]["influxd_error"].as_str() {
        assert!(!error.is_empty());
        assert!(dom.contains("id=\"influxd-error\""), "{dom}");
    }
    // The others' influxd are theirs: the leader's page still says up.
    let dom = dump_dom(dir.path(), &url(&c, leader));
    assert!(field(&dom, "influxd").contains(">up<"), "{dom}");
}

/// A seed cannot be had on demand from a small test cluster in a moment, so the page of one
/// in progress is rendered from a made-up `/status` document and opened from a file: the
/// script renders it again from the data the page carries (its refresh from `/status` fails
/// there, and it says so), so both renderers' bars are what the browser shows.
#[test]
fn a_seed_in_progress_shows_as_a_bar_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({
        "node": 3,
        "apply_lag": 0,
        "rebuild": null,
        "seed": {
            "reason": "trimmed",
            "phase": "copying",
            "source": "1 (127.0.0.1:8089) <b>",
            "need": 1200,
            "bytes_copied": 3 << 20,
            "bytes_total": 4 << 20,
            "progress": 0.75,
            "elapsed_seconds": 12.5,
            "last_error": null,
        },
        "raft": {
            "id": 3, "role": "follower", "leader": 1, "term": 4, "commit": 1500,
            "last_index": 1500, "member": true,
            "members": [
                {"id": 1, "peer_addr": "127.0.0.1:8089", "kind": "voter", "applied": 1400},
                {"id": 2, "peer_addr": "127.0.0.2:8089", "kind": "voter", "applied": 1390},
                {"id": 3, "peer_addr": "127.0.0.3:8089", "kind": "voter", "applied": 0},
            ],
            "leader_changes": [{"at_ms": 1_700_000_000_000u64, "term": 4, "leader": 1}],
        },
        "applier": {"applied": 0, "influxd_up": true, "marker": 0, "seeds_started": 1,
                    "seeds_completed": 0, "seeds_failed": 0},
        "log": {"path": "/var/lib/influx-gateway", "first_index": 1201},
        "pending_requests": 0,
    });
    let html = gateway::http::ui::render(&doc, SystemTime::now());
    let page = dir.path().join("seed.html");
    fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());

    let dom = dump_dom(dir.path(), &url);
    assert!(
        dom.contains("data-rendered-by=\"script\""),
        "the script did not render the page:\n{dom}"
    );
    assert!(dom.contains("Refresh failed at"), "{dom}");
    assert!(dom.contains("<h2>Seed in progress</h2>"), "{dom}");
    assert!(
        dom.contains("<progress id=\"progress-bar\" max=\"100\" value=\"75\">75%</progress>"),
        "{dom}"
    );
    assert_eq!(field(&dom, "progress-phase"), "copying");
    assert_eq!(field(&dom, "seed-copied"), "3.0 MiB of 4.0 MiB");
    assert_eq!(field(&dom, "seed-source"), "1 (127.0.0.1:8089) &lt;b&gt;");
    assert_eq!(field(&dom, "seed-elapsed"), "12 s");
    // What the script rendered is what the node rendered.
    let main = |page: &str| {
        let open = "<main id=\"content\">";
        let start = page.find(open).unwrap() + open.len();
        let end = page.find("</main>").unwrap();
        page[start..end].trim().to_owned()
    };
    assert_eq!(main(&dom), main(&html));

    let png = screenshot(dir.path(), &url);
    let (_, _, pixels) = decode_rgb(&png);
    // The bar's blue fill (accent colour #1f6feb) is on screen.
    let blue = pixels
        .iter()
        .filter(|p| p[2] > 200 && p[0] < 80 && p[1] > 80 && p[1] < 140)
        .count();
    assert!(blue > 1000, "{blue} pixels of the bar's blue in {png:?}");
}

/// A PNG's size and its pixels as RGB.
fn decode_rgb(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{path:?} is not a PNG: {e}"));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{path:?}: unexpected colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{path:?}");
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}
