//! The status page for operators, `GET /` and `GET /ui`: the cluster at a glance, as this node
//! sees it (members, term, commit and applied indexes, its influxd, its log, a rebuild or a
//! seed under way, recent leader changes).
//!
//! The page is rendered here from the `/status` document (status.rs), so it is complete
//! without JavaScript; its small script (ui/page.js) renders the same document again from
//! `/status` every 2 s. The two renderers must produce the same markup: the end-to-end test
//! (tests/tests/status_page.rs) checks the script's result against `/status` in Chromium.
//! Everything inserted is escaped, and the answer's Content-Security-Policy lets only the
//! page's own style and script run (by hash), so a value that slipped through could not run
//! anything either.
//!
//! It needs what `/status` needs, that is, no credentials and no `admin_api` admission: it
//! shows the same figures and offers no action.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use base64::Engine as _;
use hyper::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use serde_json::Value;

use super::response::Resp;
use super::status::status_document;
use crate::state::NodeView;

const TEMPLATE: &str = include_str!("ui/page.html");
const STYLE: &str = include_str!("ui/style.css");
const SCRIPT: &str = include_str!("ui/page.js");

/// Shown where a figure is not known (a member's progress on a follower, say).
const UNKNOWN: &str = "—";

pub async fn page(State(node): State<NodeView>) -> Resp {
    let html = render(&status_document(&node), SystemTime::now());
    let mut r = Resp::new(html.into());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Figures of this instant: a cached copy would show a cluster that no longer is.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&CSP).expect("the policy is ascii"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    r
}

/// Only the page's own style and script (by their SHA-256), requests to this node only, no
/// framing: the page needs nothing else.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = |text: &str| {
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    };
    format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash(STYLE),
        hash(SCRIPT)
    )
});

/// The whole page for a `/status` document, rendered at `now`.
pub fn render(doc: &Value, now: SystemTime) -> String {
    let node = u(doc, &["node"]).unwrap_or(0);
    let role = s(doc, &["raft", "role"]).unwrap_or("unknown");
    fill(
        TEMPLATE,
        &[
            (
                "title",
                &esc(&format!("node {node} ({role}): influx-raft-gateway")),
            ),
            ("style", STYLE),
            ("node", &node.to_string()),
            ("rendered_at", &esc(&time(now))),
            ("content", &content(doc)),
            ("initial", &script_json(doc)),
            ("script", SCRIPT),
        ],
    )
}

/// Replaces each `{{name}}` of the template with its value, in one pass over the template,
/// so a value that happens to contain `{{...}}` is never taken for a placeholder.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16 * 1024);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").expect("a placeholder is closed");
        let name = &after[..end];
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("the page has no value for {{{{{name}}}}}"));
        out.push_str(value.1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The document as the script's first data, inside `<script type="application/json">`: no
/// `<`, `>` or `&` can end the element or start a comment there, and JSON's `\u` escapes keep
/// the text the same value.
fn script_json(doc: &Value) -> String {
    serde_json::to_string(doc)
        .expect("a JSON value serializes")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The part the script renders again: everything under `<main id="content">`. Keep in step
/// with `content` in ui/page.js.
fn content(doc: &Value) -> String {
    let mut h = String::with_capacity(8 * 1024);
    h.push_str("<section class=\"cards\">");
    node_card(&mut h, doc);
    position_card(&mut h, doc);
    influxd_card(&mut h, doc);
    log_card(&mut h, doc);
    h.push_str("</section>");
    progress_section(&mut h, doc);
    members_section(&mut h, doc);
    leader_changes_section(&mut h, doc);
    h
}

fn node_card(h: &mut String, doc: &Value) {
    let role = s(doc, &["raft", "role"]).unwrap_or("unknown");
    let leader = u(doc, &["raft", "leader"]).unwrap_or(0);
    let member = doc["raft"]["member"].as_bool().unwrap_or(false);
    h.push_str("<div class=\"card\"><h2>This node</h2><dl>");
    dt_dd(h, "Node", "node", &num(&doc["node"]));
    dt_dd(h, "Role", "role", &role_badge(role));
    let leader = if leader == 0 {
        "none known".to_owned()
    } else {
        format!("node {leader}")
    };
    dt_dd(h, "Leader", "leader", &leader);
    dt_dd(h, "Term", "term", &num(&doc["raft"]["term"]));
    let member = if member {
        "yes"
    } else {
        "no: not in the configuration"
    };
    dt_dd(h, "Member", "member", member);
    h.push_str("</dl></div>");
}

fn position_card(h: &mut String, doc: &Value) {
    h.push_str("<div class=\"card\"><h2>Log position</h2><dl>");
    dt_dd(h, "Committed", "commit", &num(&doc["raft"]["commit"]));
    dt_dd(h, "Applied", "applied", &num(&doc["applier"]["applied"]));
    dt_dd(h, "Apply lag", "apply-lag", &num(&doc["apply_lag"]));
    dt_dd(
        h,
        "Last index",
        "last-index",
        &num(&doc["raft"]["last_index"]),
    );
    dt_dd(
        h,
        "Waiting requests",
        "pending",
        &num(&doc["pending_requests"]),
    );
    h.push_str("</dl></div>");
}

fn influxd_card(h: &mut String, doc: &Value) {
    let a = &doc["applier"];
    let up = a["influxd_up"].as_bool().unwrap_or(false);
    h.push_str("<div class=\"card\"><h2>influxd</h2><dl>");
    let state = if up {
        "<span class=\"badge ok\">up</span>"
    } else {
        "<span class=\"badge bad\">down</span>"
    };
    dt_dd(h, "State", "influxd", state);
    if let Some(e) = a["influxd_error"].as_str() {
        dt_dd(h, "Error", "influxd-error", &error_span(e));
    }
    dt_dd(
        h,
        "Version",
        "influxd-version",
        &text(&a["influxd_version"]),
    );
    dt_dd(h, "Marker", "marker", &num(&a["marker"]));
    let seeds = format!(
        "{} started, {} completed, {} failed",
        num(&a["seeds_started"]),
        num(&a["seeds_completed"]),
        num(&a["seeds_failed"])
    );
    dt_dd(h, "Seeds", "seeds", &seeds);
    if let Some(e) = a["last_seed_error"].as_str() {
        dt_dd(h, "Last seed error", "seed-error", &error_span(e));
    }
    h.push_str("</dl></div>");
}

fn log_card(h: &mut String, doc: &Value) {
    let l = &doc["log"];
    h.push_str("<div class=\"card\"><h2>Raft log</h2><dl>");
    dt_dd(h, "First index", "log-first-index", &num(&l["first_index"]));
    dt_dd(
        h,
        "Entries on disk",
        "log-disk-entries",
        &num(&l["disk_entries"]),
    );
    dt_dd(
        h,
        "Size on disk",
        "log-disk-bytes",
        &bytes(&l["disk_bytes"]),
    );
    dt_dd(h, "Directory", "log-dir-bytes", &bytes(&l["dir_bytes"]));
    let trimmed = format!(
        "{} entries, {}",
        num(&l["trimmed_entries"]),
        bytes(&l["trimmed_bytes"])
    );
    dt_dd(h, "Trimmed", "log-trimmed", &trimmed);
    let memory = format!(
        "{} entries, {} of {}",
        num(&l["memory_entries"]),
        bytes(&l["memory_bytes"]),
        bytes(&l["memory_budget"])
    );
    dt_dd(h, "In memory", "log-memory", &memory);
    dt_dd(h, "Path", "log-path", &text(&l["path"]));
    h.push_str("</dl></div>");
}

/// A rebuild or a seed under way, with a bar; a seed wins if both were reported, since it
/// replaces influxd wholesale.
fn progress_section(h: &mut String, doc: &Value) {
    let seed = &doc["seed"];
    let rebuild = &doc["rebuild"];
    if seed.is_object() {
        h.push_str("<section id=\"progress\" class=\"wide active\"><h2>Seed in progress</h2>");
        bar(h, seed["progress"].as_f64().unwrap_or(0.0));
        h.push_str("<dl>");
        dt_dd(h, "Phase", "progress-phase", &text(&seed["phase"]));
        dt_dd(h, "Reason", "seed-reason", &text(&seed["reason"]));
        dt_dd(h, "Source", "seed-source", &text(&seed["source"]));
        dt_dd(h, "Must cover index", "seed-need", &num(&seed["need"]));
        let total = seed["bytes_total"].as_u64().unwrap_or(0);
        let copied = if total == 0 {
            format!("{} of a size not known yet", bytes(&seed["bytes_copied"]))
        } else {
            format!(
                "{} of {}",
                bytes(&seed["bytes_copied"]),
                bytes(&seed["bytes_total"])
            )
        };
        dt_dd(h, "Copied", "seed-copied", &copied);
        let elapsed = seed["elapsed_seconds"].as_f64().unwrap_or(0.0).floor();
        dt_dd(h, "Elapsed", "seed-elapsed", &format!("{elapsed} s"));
        if let Some(e) = seed["last_error"].as_str() {
            dt_dd(h, "Last error", "seed-last-error", &error_span(e));
        }
        h.push_str("</dl></section>");
    } else if rebuild.is_object() {
        h.push_str("<section id=\"progress\" class=\"wide active\"><h2>Rebuild in progress</h2>");
        bar(h, rebuild["progress"].as_f64().unwrap_or(0.0));
        h.push_str("<dl>");
        dt_dd(
            h,
            "Phase",
            "progress-phase",
            "replaying the log into influxd",
        );
        let span = format!(
            "from {} to {}, applied {}",
            num(&rebuild["from"]),
            num(&rebuild["target"]),
            num(&rebuild["applied"])
        );
        dt_dd(h, "Entries", "rebuild-span", &span);
        h.push_str("</dl></section>");
    } else {
        h.push_str(
            "<section id=\"progress\" class=\"wide\"><h2>Rebuild or seed</h2>\
             <p class=\"muted\">None in progress.</p></section>",
        );
    }
}

/// A progress bar (`fraction` from 0 to 1) and its percent, in whole percents rounded down,
/// so that 99.9% never shows as done.
fn bar(h: &mut String, fraction: f64) {
    let percent = percent(fraction);
    let _ = write!(
        h,
        "<progress id=\"progress-bar\" max=\"100\" value=\"{percent}\">{percent}%</progress>\
         <p id=\"progress-percent\">{percent}%</p>"
    );
}

fn percent(fraction: f64) -> u64 {
    if fraction.is_finite() {
        (fraction.clamp(0.0, 1.0) * 100.0).floor() as u64
    } else {
        0
    }
}

fn members_section(h: &mut String, doc: &Value) {
    let raft = &doc["raft"];
    let me = u(doc, &["node"]).unwrap_or(0);
    let leader = u(raft, &["leader"]).unwrap_or(0);
    let my_role = s(raft, &["role"]).unwrap_or("unknown");
    let commit = u(raft, &["commit"]).unwrap_or(0);
    h.push_str(
        "<section class=\"wide\" id=\"members\"><h2>Members</h2><table><thead><tr>\
         <th>Id</th><th>Peer address</th><th>Kind</th><th>Role</th><th>Matched</th>\
         <th>Applied (influxd marker)</th><th>Behind commit</th></tr></thead><tbody>",
    );
    for m in raft["members"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let id = u(m, &["id"]).unwrap_or(0);
        let kind = s(m, &["kind"]).unwrap_or("voter");
        let role = member_role(id, kind, me, my_role, leader);
        let mut tags = role_badge(role);
        if id == me {
            tags.push_str(" <span class=\"badge\">this node</span>");
        }
        let behind =
            u(m, &["applied"]).map_or(UNKNOWN.to_owned(), |a| commit.saturating_sub(a).to_string());
        let _ = write!(
            h,
            "<tr data-member=\"{id}\"{}><td class=\"m-id\">{id}</td><td class=\"m-addr\">{}</td>\
             <td class=\"m-kind\">{}</td><td class=\"m-role\">{tags}</td>\
             <td class=\"m-matched\">{}</td><td class=\"m-applied\">{}</td>\
             <td class=\"m-behind\">{behind}</td></tr>",
            if id == me { " class=\"self\"" } else { "" },
            text(&m["peer_addr"]),
            esc(kind),
            num(&m["matched"]),
            num(&m["applied"]),
        );
    }
    h.push_str("</tbody></table>");
    if my_role != "leader" {
        // Members tell their API address to nobody (the address book holds peer addresses
        // only), so there is no link to make: name the leader instead.
        h.push_str("<p class=\"muted\" id=\"leader-note\">");
        h.push_str(
            "Each member's replication progress (Matched) is known to the leader only, and \
             what a follower knows of the others comes from the leader: ",
        );
        if leader == 0 {
            h.push_str("no leader is known now; see the leader's page once there is one.");
        } else {
            let addr = raft["members"]
                .as_array()
                .and_then(|ms| ms.iter().find(|m| u(m, &["id"]) == Some(leader)))
                .map_or(UNKNOWN.to_owned(), |m| text(&m["peer_addr"]));
            let _ = write!(
                h,
                "see the leader's page (node {leader}, peer address {addr}; this node does not \
                 know its API address)."
            );
        }
        h.push_str("</p>");
    }
    h.push_str("</section>");
}

/// A member's role as this node can tell it: the leader and itself it knows; another voter
/// follows whatever leader there is.
fn member_role<'a>(id: u64, kind: &'a str, me: u64, my_role: &'a str, leader: u64) -> &'a str {
    if id == leader {
        "leader"
    } else if id == me {
        my_role
    } else if kind == "learner" {
        "learner"
    } else if leader != 0 {
        "follower"
    } else {
        "unknown"
    }
}

fn leader_changes_section(h: &mut String, doc: &Value) {
    h.push_str(
        "<section class=\"wide\" id=\"leader-changes\"><h2>Leader changes seen by this node</h2>",
    );
    let changes = doc["raft"]["leader_changes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if changes.is_empty() {
        h.push_str("<p class=\"muted\">None since this node started.</p>");
    } else {
        h.push_str(
            "<table><thead><tr><th>When (UTC)</th><th>Term</th><th>New leader</th></tr></thead>\
             <tbody>",
        );
        for c in changes.iter().rev() {
            let when = u(c, &["at_ms"]).map_or(UNKNOWN.to_owned(), |ms| {
                time(UNIX_EPOCH + Duration::from_millis(ms))
            });
            let leader = match u(c, &["leader"]) {
                Some(0) | None => "none (leader lost)".to_owned(),
                Some(l) => format!("node {l}"),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&when),
                num(&c["term"]),
                leader
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

fn dt_dd(h: &mut String, label: &str, id: &str, html: &str) {
    let _ = write!(h, "<dt>{label}</dt><dd id=\"{id}\">{html}</dd>");
}

fn role_badge(role: &str) -> String {
    let class = match role {
        "leader" => "badge leader",
        "candidate" | "pre-candidate" | "unknown" => "badge warn",
        _ => "badge",
    };
    format!("<span class=\"{class}\">{}</span>", esc(role))
}

fn error_span(e: &str) -> String {
    format!("<span class=\"error\">{}</span>", esc(e))
}

/// A number as it is (indexes are compared with `/status` as they are), or "—".
fn num(v: &Value) -> String {
    v.as_u64().map_or(UNKNOWN.to_owned(), |n| n.to_string())
}

/// A string, escaped, or "—".
fn text(v: &Value) -> String {
    v.as_str().map_or(UNKNOWN.to_owned(), esc)
}

/// A byte count in binary units, one decimal (as `bytes` in ui/page.js).
fn bytes(v: &Value) -> String {
    let Some(n) = v.as_u64() else {
        return UNKNOWN.to_owned();
    };
    if n < 1024 {
        return format!("{n} B");
    }
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

/// As JavaScript's `Date.toISOString()`, which the script uses: `2026-01-31T12:00:00.000Z`.
fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn u(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Text made safe for HTML, in element content and in quoted attributes alike.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::status::document;
    use crate::raft::{LeaderChange, MemberStatus, RaftStatus, Role};
    use serde_json::json;
    use snapshotless::status::{Rebuild, SeedReason, Seeding};
    use snapshotless::ApplierStatus;

    fn member(id: u64, addr: &str, matched: Option<u64>, applied: Option<u64>) -> MemberStatus {
        MemberStatus {
            id,
            peer_addr: Some(addr.to_owned()),
            kind: "voter",
            matched,
            applied,
        }
    }

    fn log() -> Value {
        json!({
            "path": "/var/lib/influx-gateway",
            "first_index": 41,
            "disk_entries": 60,
            "disk_bytes": 3 << 20,
            "dir_bytes": 5 << 20,
            "trimmed_entries": 40,
            "trimmed_bytes": 2048,
            "memory_entries": 60,
            "memory_bytes": 512,
            "memory_budget": 64 << 20,
        })
    }

    /// The leader of three, applied a little behind its commit.
    fn leader_doc() -> Value {
        let raft = RaftStatus {
            id: 2,
            role: Role::Leader,
            leader: 2,
            term: 7,
            commit: 100,
            last_index: 101,
            members: vec![
                member(1, "10.0.0.1:8089", Some(100), Some(97)),
                member(2, "10.0.0.2:8089", Some(101), Some(98)),
                member(3, "10.0.0.3:8089", Some(60), Some(55)),
            ],
            member: true,
            leader_changes: vec![
                LeaderChange {
                    at_ms: 1_700_000_000_000,
                    term: 6,
                    leader: 1,
                },
                LeaderChange {
                    at_ms: 1_700_000_100_250,
                    term: 7,
                    leader: 2,
                },
            ],
            ..RaftStatus::default()
        };
        let applier = ApplierStatus {
            applied: 98,
            influxd_up: true,
            influxd_version: Some("1.6.7~rc0".into()),
            marker: 98,
            ..ApplierStatus::default()
        };
        document(&raft, &applier, log(), 3)
    }

    /// The whole page, rendered at a fixed time.
    fn whole(doc: &Value) -> String {
        render(doc, UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    /// What the page shows of `doc`, as it stands in the whole page (the script, which is in
    /// the page too, names the same ids and texts).
    fn page(doc: &Value) -> String {
        let html = whole(doc);
        let shown = content(doc);
        assert!(html.contains(&shown));
        shown
    }

    #[test]
    fn the_leaders_page_shows_every_member_and_figure() {
        let whole = whole(&leader_doc());
        assert!(!whole.contains("{{"), "a placeholder left: {whole}");
        assert!(whole.contains("Rendered by the node at 2027-01-15T08:00:00.000Z"));
        assert!(whole.contains("<title>node 2 (leader): influx-raft-gateway</title>"));
        let html = page(&leader_doc());
        for (id, want) in [
            ("term", "7"),
            ("commit", "100"),
            ("applied", "98"),
            ("apply-lag", "2"),
            ("last-index", "101"),
            ("leader", "node 2"),
            ("log-first-index", "41"),
            ("log-disk-bytes", "3.0 MiB"),
            ("log-trimmed", "40 entries, 2.0 KiB"),
            ("influxd", "<span class=\"badge ok\">up</span>"),
        ] {
            let cell = format!("id=\"{id}\">{want}</dd>");
            assert!(html.contains(&cell), "{cell} not in {html}");
        }
        for (id, addr, matched, applied, behind) in [
            (1, "10.0.0.1:8089", 100, 97, 3),
            (2, "10.0.0.2:8089", 101, 98, 2),
            (3, "10.0.0.3:8089", 60, 55, 45),
        ] {
            let row = format!("<td class=\"m-id\">{id}</td><td class=\"m-addr\">{addr}</td>");
            assert!(html.contains(&row), "{row} not in {html}");
            for cell in [
                format!("<td class=\"m-matched\">{matched}</td>"),
                format!("<td class=\"m-applied\">{applied}</td>"),
                format!("<td class=\"m-behind\">{behind}</td>"),
            ] {
                assert!(html.contains(&cell), "{cell} not in {html}");
            }
        }
        assert!(html.contains("<tr data-member=\"2\" class=\"self\">"));
        assert!(html.contains("this node</span>"));
        // The leader knows everyone's progress: no pointer elsewhere.
        assert!(!html.contains("leader-note"));
        assert!(!html.contains("see the leader's page"));
        assert!(html.contains("None in progress."));
        // Newest change first, in the script's time format.
        let newer = html
            .find("2023-11-14T22:15:00.250Z")
            .expect("the newer change");
        let older = html
            .find("2023-11-14T22:13:20.000Z")
            .expect("the older change");
        assert!(newer < older);
    }

    #[test]
    fn a_follower_points_to_the_leaders_page() {
        let mut doc = leader_doc();
        doc["node"] = json!(3);
        doc["raft"]["id"] = json!(3);
        doc["raft"]["role"] = json!("follower");
        for m in doc["raft"]["members"].as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("matched");
        }
        let html = page(&doc);
        assert!(html.contains("see the leader's page (node 2, peer address 10.0.0.2:8089"));
        assert!(html.contains("<td class=\"m-matched\">—</td>"));
        assert!(html.contains("<tr data-member=\"3\" class=\"self\">"));

        doc["raft"]["leader"] = json!(0);
        doc["raft"]["role"] = json!("candidate");
        let html = page(&doc);
        assert!(html.contains("id=\"leader\">none known</dd>"));
        assert!(html.contains("no leader is known now; see the leader's page"));
    }

    #[test]
    fn influxd_down_is_shown_with_its_error() {
        let raft = RaftStatus {
            id: 1,
            leader: 1,
            role: Role::Leader,
            ..RaftStatus::default()
        };
        let applier = ApplierStatus {
            influxd_up: false,
            influxd_error: Some("connection refused".into()),
            ..ApplierStatus::default()
        };
        let html = page(&document(&raft, &applier, log(), 0));
        assert!(html.contains("id=\"influxd\"><span class=\"badge bad\">down</span></dd>"));
        assert!(html.contains("id=\"influxd-error\"><span class=\"error\">connection refused"));
    }

    #[test]
    fn a_rebuild_and_a_seed_show_a_progress_bar() {
        let raft = RaftStatus {
            id: 1,
            leader: 2,
            commit: 300,
            ..RaftStatus::default()
        };
        let rebuilding = ApplierStatus {
            applied: 150,
            influxd_up: true,
            rebuilding: Some(Rebuild {
                from: 100,
                target: 300,
            }),
            ..ApplierStatus::default()
        };
        let html = page(&document(&raft, &rebuilding, log(), 0));
        assert!(html.contains("<h2>Rebuild in progress</h2>"));
        assert!(
            html.contains("<progress id=\"progress-bar\" max=\"100\" value=\"25\">25%</progress>")
        );
        assert!(html.contains("id=\"rebuild-span\">from 100 to 300, applied 150</dd>"));

        let seeding = ApplierStatus {
            seeding: Some(Seeding {
                reason: SeedReason::Trimmed,
                need: 250,
                phase: "copying",
                source: Some("2 (10.0.0.2:8089)".into()),
                bytes_done: 2 << 20,
                bytes_total: 3 << 20,
                started: Some(std::time::Instant::now()),
            }),
            last_seed_error: Some("source 3: <refused>".into()),
            ..rebuilding
        };
        let html = page(&document(&raft, &seeding, log(), 0));
        // A seed replaces influxd: it is what the bar shows.
        assert!(html.contains("<h2>Seed in progress</h2>"));
        assert!(!html.contains("Rebuild in progress"));
        assert!(html.contains("value=\"66\">66%</progress>"));
        assert!(html.contains("id=\"progress-phase\">copying</dd>"));
        assert!(html.contains("id=\"seed-reason\">trimmed</dd>"));
        assert!(html.contains("id=\"seed-source\">2 (10.0.0.2:8089)</dd>"));
        assert!(html.contains("id=\"seed-copied\">2.0 MiB of 3.0 MiB</dd>"));
        assert!(html.contains("source 3: &lt;refused&gt;"));

        // Before the source said how large the copy is.
        let mut doc = document(&raft, &seeding, log(), 0);
        doc["seed"]["bytes_total"] = json!(0);
        doc["seed"]["progress"] = json!(0.0);
        let html = page(&doc);
        assert!(html.contains("value=\"0\">0%</progress>"));
        assert!(html.contains("of a size not known yet"));
    }

    #[test]
    fn percents_round_down_and_stay_within_bounds() {
        assert_eq!(percent(0.0), 0);
        assert_eq!(percent(0.999), 99);
        assert_eq!(percent(1.0), 100);
        assert_eq!(percent(7.0), 100);
        assert_eq!(percent(-1.0), 0);
        assert_eq!(percent(f64::NAN), 0);
    }

    #[test]
    fn everything_inserted_is_escaped() {
        let evil = "<script>alert('x')</script>\"&{{content}}";
        let mut doc = leader_doc();
        doc["raft"]["members"][0]["peer_addr"] = json!(evil);
        doc["raft"]["members"][1]["kind"] = json!(evil);
        doc["raft"]["role"] = json!(evil);
        doc["applier"]["influxd_error"] = json!(evil);
        doc["applier"]["influxd_version"] = json!(evil);
        doc["log"]["path"] = json!(evil);
        doc["seed"] = json!({"phase": evil, "source": evil, "reason": evil, "last_error": evil});
        let html = whole(&doc);
        let escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;{{content}}";
        assert!(html.matches(escaped).count() >= 9, "{html}");
        // Only the page's own two scripts, and the data cannot end its element.
        assert_eq!(html.matches("<script").count(), 2, "{html}");
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        assert!(html.contains("\\u003cscript\\u003ealert"));
        // The embedded document reads back as the same value.
        let start = html.find("id=\"initial\">").unwrap() + "id=\"initial\">".len();
        let end = start + html[start..].find("</script>").unwrap();
        let back: Value = serde_json::from_str(&html[start..end]).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn the_policy_admits_exactly_the_pages_style_and_script() {
        let html = whole(&leader_doc());
        let inline = |open: &str, close: &str| {
            let start = html.find(open).unwrap() + open.len();
            let end = start + html[start..].find(close).unwrap();
            let digest = ring::digest::digest(&ring::digest::SHA256, &html.as_bytes()[start..end]);
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        };
        let style = inline("<style>", "</style>");
        let script = inline("<script>", "</script>");
        assert!(
            CSP.contains(&format!("style-src 'sha256-{style}'")),
            "{}",
            *CSP
        );
        assert!(
            CSP.contains(&format!("script-src 'sha256-{script}'")),
            "{}",
            *CSP
        );
        assert!(CSP.contains("default-src 'none'"));
    }
}
