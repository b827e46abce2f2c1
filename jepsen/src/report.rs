//! The HTML report: a summary, and throughput and latency over time drawn as inline SVG, with
//! the nemesis periods shaded, as Jepsen draws them.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::checker::CheckResult;
use crate::history::{Event, Type, F};

const W: f64 = 960.0;
const H: f64 = 320.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
/// Latency dots drawn at most (failures and indeterminate ones are always drawn).
const MAX_DOTS: usize = 20_000;

// Jepsen's colours.
const OK: &str = "#81BFFC";
const INFO: &str = "#FFA400";
const FAIL: &str = "#FF1E90";
const NEMESIS: &str = "#000000";

fn color(t: Type) -> &'static str {
    match t {
        Type::Ok => OK,
        Type::Fail => FAIL,
        _ => INFO,
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A fault's period on the time axis, in seconds.
struct Period {
    start: f64,
    stop: f64,
    label: String,
}

fn periods(history: &[Event], end: f64) -> Vec<Period> {
    let mut out = Vec::new();
    let mut open: Option<(f64, String)> = None;
    for e in history {
        match e.f {
            F::Start => {
                let label = e
                    .nemesis
                    .as_ref()
                    .map(|n| n.kind.clone())
                    .unwrap_or_default();
                open = Some((secs(e.time), label));
            }
            F::Stop => {
                if let Some((start, label)) = open.take() {
                    out.push(Period {
                        start,
                        stop: secs(e.time),
                        label,
                    });
                }
            }
            _ => {}
        }
    }
    if let Some((start, label)) = open {
        out.push(Period {
            start,
            stop: end,
            label,
        });
    }
    out
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A plot area: maps data to pixels and draws the frame, axes and shading.
struct Plot {
    svg: String,
    x_max: f64,
    y_min: f64,
    y_max: f64,
    log_y: bool,
}

impl Plot {
    fn new(title: &str, x_max: f64, y_min: f64, y_max: f64, log_y: bool, y_label: &str) -> Plot {
        let mut p = Plot {
            svg: String::new(),
            x_max: x_max.max(1.0),
            y_min,
            y_max: y_max.max(y_min * 10.0).max(1.0),
            log_y,
        };
        let _ = write!(
            p.svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">
<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>
<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>
<text x="{}" y="{}" text-anchor="middle">time (s)</text>
"#,
            W / 2.0,
            esc(title),
            TOP + (H - TOP - BOTTOM) / 2.0,
            TOP + (H - TOP - BOTTOM) / 2.0,
            esc(y_label),
            LEFT + (W - LEFT - RIGHT) / 2.0,
            H - 8.0
        );
        p
    }

    fn x(&self, s: f64) -> f64 {
        LEFT + s / self.x_max * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        let frac = if self.log_y {
            (v.max(self.y_min).ln() - self.y_min.ln()) / (self.y_max.ln() - self.y_min.ln())
        } else {
            (v - self.y_min) / (self.y_max - self.y_min)
        };
        H - BOTTOM - frac.clamp(0.0, 1.0) * (H - TOP - BOTTOM)
    }

    fn shade(&mut self, periods: &[Period]) {
        for p in periods {
            let (x0, x1) = (self.x(p.start), self.x(p.stop));
            let _ = writeln!(
                self.svg,
                r#"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="{NEMESIS}" fill-opacity="0.08"><title>{}</title></rect>"#,
                (x1 - x0).max(1.0),
                H - TOP - BOTTOM,
                esc(&format!("{} {:.1}s - {:.1}s", p.label, p.start, p.stop)),
            );
            let _ = writeln!(
                self.svg,
                r##"<text x="{:.1}" y="{}" font-size="9" fill="#555" text-anchor="end" transform="rotate(-90 {:.1} {})">{}</text>"##,
                x0 + 9.0,
                TOP + 2.0,
                x0 + 9.0,
                TOP + 2.0,
                esc(&p.label)
            );
        }
    }

    fn axes(&mut self) {
        let (x0, y0, x1, y1) = (LEFT, H - BOTTOM, W - RIGHT, TOP);
        let _ = writeln!(
            self.svg,
            r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            x1 - x0,
            y0 - y1
        );
        let step = nice_step(self.x_max / 10.0);
        let mut t = 0.0;
        while t <= self.x_max + 1e-9 {
            let x = self.x(t);
            let _ = writeln!(
                self.svg,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#888"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                y0 + 4.0,
                y0 + 16.0,
                t
            );
            t += step;
        }
        let ticks: Vec<f64> = if self.log_y {
            let mut v = self.y_min;
            let mut out = Vec::new();
            while v <= self.y_max * 1.0001 {
                out.push(v);
                v *= 10.0;
            }
            out
        } else {
            let step = nice_step(self.y_max / 5.0);
            (0..=((self.y_max / step) as usize))
                .map(|i| i as f64 * step)
                .collect()
        };
        for v in ticks {
            let y = self.y(v);
            let _ = writeln!(
                self.svg,
                r##"<line x1="{}" y1="{y:.1}" x2="{x0}" y2="{y:.1}" stroke="#888"/><line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 4.0,
                x0 - 6.0,
                y + 4.0,
                v
            );
        }
    }

    fn legend(&mut self, entries: &[(&str, &str)]) {
        let mut x = W - RIGHT - 90.0 * entries.len() as f64;
        for (name, c) in entries {
            let _ = writeln!(
                self.svg,
                r#"<rect x="{x}" y="{}" width="10" height="10" fill="{c}"/><text x="{}" y="{}">{name}</text>"#,
                TOP - 14.0,
                x + 14.0,
                TOP - 5.0
            );
            x += 90.0;
        }
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Completed writes per second, by outcome.
pub fn throughput_svg(history: &[Event]) -> String {
    let end = history.last().map_or(1.0, |e| secs(e.time));
    let buckets = end.ceil().max(1.0) as usize;
    let mut counts: HashMap<Type, Vec<f64>> = HashMap::new();
    for t in [Type::Ok, Type::Info, Type::Fail] {
        counts.insert(t, vec![0.0; buckets + 1]);
    }
    for e in history
        .iter()
        .filter(|e| e.f == F::Write && e.kind != Type::Invoke)
    {
        if let Some(v) = counts.get_mut(&e.kind) {
            v[(secs(e.time) as usize).min(buckets)] += 1.0;
        }
    }
    let y_max = counts.values().flatten().copied().fold(1.0, f64::max) * 1.1;
    let mut plot = Plot::new(
        "Throughput: writes completed per second",
        end,
        0.0,
        y_max,
        false,
        "ops/s",
    );
    plot.shade(&periods(history, end));
    plot.axes();
    for t in [Type::Ok, Type::Info, Type::Fail] {
        let pts: Vec<String> = counts[&t]
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:.1},{:.1}", plot.x(i as f64 + 0.5), plot.y(*c)))
            .collect();
        let _ = writeln!(
            plot.svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
            pts.join(" "),
            color(t)
        );
    }
    plot.legend(&[("ok", OK), ("info", INFO), ("fail", FAIL)]);
    plot.finish()
}

/// Each write's latency at its invocation time, coloured by outcome, on a log scale.
pub fn latency_svg(history: &[Event]) -> String {
    let end = history.last().map_or(1.0, |e| secs(e.time));
    let invokes: HashMap<u64, u64> = history
        .iter()
        .filter(|e| e.f == F::Write && e.kind == Type::Invoke)
        .map(|e| (e.op, e.time))
        .collect();
    let done: Vec<(f64, f64, Type)> = history
        .iter()
        .filter(|e| e.f == F::Write && e.kind != Type::Invoke)
        .filter_map(|e| {
            invokes
                .get(&e.op)
                .map(|&t| (secs(t), (e.time - t) as f64 / 1e6, e.kind))
        })
        .collect();
    let oks = done.iter().filter(|d| d.2 == Type::Ok).count();
    let every = oks.div_ceil(MAX_DOTS).max(1);
    let max_ms = done.iter().map(|d| d.1).fold(10.0, f64::max);
    let y_max = 10f64.powf(max_ms.log10().ceil());
    let mut plot = Plot::new("Latency of writes", end, 0.1, y_max, true, "latency (ms)");
    plot.shade(&periods(history, end));
    plot.axes();
    // Every `every`-th acknowledged write is drawn: a thinned cloud has the same shape.
    let mut ok_seen = 0usize;
    for (t, ms, kind) in &done {
        if *kind == Type::Ok {
            ok_seen += 1;
            if ok_seen < every {
                continue;
            }
            ok_seen = 0;
        }
        let _ = write!(
            plot.svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="{}" fill-opacity="0.7"/>"#,
            plot.x(*t),
            plot.y(*ms),
            color(*kind)
        );
    }
    plot.svg.push('\n');
    plot.legend(&[("ok", OK), ("info", INFO), ("fail", FAIL)]);
    plot.finish()
}

/// The whole page. `meta` is shown as a table of key/value pairs above the plots.
pub fn html(history: &[Event], result: &CheckResult, meta: &[(String, String)]) -> String {
    let mut s = String::new();
    let verdict = if result.valid { "VALID" } else { "INVALID" };
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>jepsen: {verdict}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 13px; }}
.valid {{ color: #080; }} .invalid {{ color: #c00; }}
</style></head><body>
<h1 class="{}">{verdict}</h1>
"#,
        if result.valid { "valid" } else { "invalid" }
    );
    if !result.problems.is_empty() {
        s.push_str("<ul>");
        for p in &result.problems {
            let _ = write!(s, "<li class=\"invalid\">{}</li>", esc(p));
        }
        s.push_str("</ul>");
    }
    s.push_str("<table>");
    for (k, v) in meta {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s.push_str("</table>\n<h2>Set checker</h2><table>");
    let counts = [
        ("attempted", result.attempted),
        ("acknowledged", result.acknowledged),
        ("failed (definite)", result.failed),
        ("indeterminate", result.indeterminate),
        ("indeterminate, present", result.indeterminate_present),
        ("indeterminate, absent", result.indeterminate_absent),
        ("lost", result.lost),
        ("unexpected", result.unexpected),
        ("failed_present", result.failed_present),
        ("duplicated", result.duplicated),
        ("divergent", result.divergent),
        ("corrupted", result.corrupted),
        ("torn", result.torn),
        ("flickered (periodic reads)", result.visibility.flickered),
    ];
    for (k, v) in counts {
        let _ = write!(s, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    for (n, c) in &result.points_by_node {
        let _ = write!(s, "<tr><th>points on n{n}</th><td>{c}</td></tr>");
    }
    s.push_str("</table>\n");
    let q = |q: &Option<crate::checker::Quantiles>| match q {
        Some(q) => format!(
            "n={} min {:.0} p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
            q.count, q.min, q.p50, q.p90, q.p99, q.max
        ),
        None => "-".into(),
    };
    let _ = write!(
        s,
        "<h2>Visible on every replica (ms)</h2><table><tr><th>from invocation</th><td>{}</td></tr><tr><th>from acknowledgement</th><td>{}</td></tr><tr><th>never seen everywhere by periodic reads</th><td>{}</td></tr></table>",
        q(&result.visibility.from_invoke_ms),
        q(&result.visibility.from_ack_ms),
        result.visibility.never_read_everywhere
    );
    let k = &result.keyed;
    let _ = write!(
        s,
        "<h2>Keyed writes (Idempotency-Key, no timestamps, retried)</h2><table>\
         <tr><th>writes</th><td>{}</td></tr><tr><th>ok / fail / info</th><td>{} / {} / {}</td></tr>\
         <tr><th>retried / attempts</th><td>{} / {}</td></tr>\
         <tr><th>acknowledged after a retry / attempts answered as replays</th><td>{} / {}</td></tr>\
         <tr><th>indeterminate present / absent everywhere</th><td>{} / {}</td></tr>\
         <tr><th>applied more than once</th><td>{}</td></tr>\
         <tr><th>applied more than once under a clock skew over the window (not a failure)</th><td>{}</td></tr>\
         <tr><th>acknowledged, missing</th><td>{}</td></tr></table>",
        k.writes, k.acknowledged, k.failed, k.indeterminate, k.retried, k.attempts,
        k.acknowledged_after_retry, k.replayed, k.indeterminate_present, k.indeterminate_absent,
        k.duplicated, k.duplicated_under_skew, k.lost
    );
    let u = &result.unkeyed_retries;
    if u.writes > 0 {
        let _ = write!(
            s,
            "<h2>Untimed writes retried without a key (statistic)</h2><table>\
             <tr><th>writes / retried / attempts</th><td>{} / {} / {}</td></tr>\
             <tr><th>writes applied more than once / extra copies</th><td>{} / {}</td></tr></table>",
            u.writes, u.retried, u.attempts, u.duplicated, u.extra_copies
        );
    }
    let l = &result.linearizable_reads;
    let _ = write!(
        s,
        "<h2>Linearizable reads</h2><table><tr><th>ok / failed</th><td>{} / {}</td></tr>\
         <tr><th>elements checked</th><td>{}</td></tr><tr><th>latency (ms)</th><td>{}</td></tr>\
         <tr><th>missed a write acknowledged before they began</th><td>{}</td></tr>\
         <tr><th>saw a failed write</th><td>{}</td></tr></table>",
        l.ok,
        l.failed,
        l.elements_checked,
        q(&l.latency_ms),
        l.stale,
        l.saw_failed
    );
    let json_list = |s: &mut String, title: &str, items: Vec<String>| {
        if !items.is_empty() {
            let _ = write!(s, "<h3>{title}</h3><pre>");
            for i in items.iter().take(50) {
                let _ = writeln!(s, "{}", esc(i));
            }
            s.push_str("</pre>");
        }
    };
    json_list(
        &mut s,
        "keyed writes applied more than once",
        k.duplicated_ops.iter().map(json).collect(),
    );
    json_list(
        &mut s,
        "keyed writes applied more than once under clock skew",
        k.duplicated_under_skew_ops.iter().map(json).collect(),
    );
    json_list(
        &mut s,
        "acknowledged keyed writes missing",
        k.lost_ops.iter().map(json).collect(),
    );
    json_list(
        &mut s,
        "stale linearizable reads",
        l.stale_reads.iter().map(json).collect(),
    );
    json_list(
        &mut s,
        "linearizable reads that saw failed writes",
        l.saw_failed_reads.iter().map(json).collect(),
    );
    s.push_str(&schema_section(result));
    s.push_str("<h2>Plots</h2>\n");
    s.push_str(&throughput_svg(history));
    s.push_str("<br>\n");
    s.push_str(&latency_svg(history));
    s.push_str("<br>\n");
    s.push_str(&membership_svg(history));
    let rec = &result.recovery;
    let _ = write!(
        s,
        "<h2>Recovery after each heal (target {} s)</h2><table><tr><th>healed at (s)</th><th>fault</th><th>first ok, any node (s)</th><th>ok through every node (s)</th></tr>",
        rec.target_s
    );
    let f = |x: Option<f64>| x.map_or("never".to_owned(), |x| format!("{x:.2}"));
    for h in &rec.heals {
        let _ = write!(
            s,
            "<tr><td>{:.1}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
            h.healed_at,
            esc(&h.kind),
            esc(&h.detail),
            f(h.any_node_s),
            f(h.every_node_s)
        );
    }
    s.push_str("</table>\n<h2>Stretches over 1 s without an acknowledged write</h2><table><tr><th>from (s)</th><th>to (s)</th><th>seconds</th><th>during a fault</th></tr>");
    for g in rec.gaps.iter().take(50) {
        let _ = write!(
            s,
            "<tr><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{}</td></tr>",
            g.from, g.to, g.seconds, g.during_fault
        );
    }
    s.push_str("</table>\n");
    if !result.divergent_points.is_empty() {
        s.push_str("<h2>Divergent points (first)</h2><pre>");
        for d in result.divergent_points.iter().take(50) {
            let _ = writeln!(s, "{}", esc(&serde_json::to_string(d).unwrap_or_default()));
        }
        s.push_str("</pre>");
    }
    for (name, list) in [
        ("lost", &result.lost_elements),
        ("unexpected", &result.unexpected_elements),
        ("failed_present", &result.failed_present_elements),
        ("duplicated", &result.duplicated_elements),
        ("corrupted", &result.corrupted_elements),
    ] {
        if !list.is_empty() {
            let shown: Vec<String> = list.iter().take(200).map(u64::to_string).collect();
            let _ = write!(s, "<h3>{name}</h3><p>{}</p>", shown.join(" "));
        }
    }
    s.push_str("</body></html>\n");
    s
}

/// The schema workload: its operations by outcome, the main points its deletes covered,
/// and every difference between replicas and contradiction of an operation.
fn schema_section(result: &CheckResult) -> String {
    let (sc, d) = (&result.schema, &result.deletes);
    let mut s = String::from(
        "<h2>Schema workload</h2><table><tr><th>operation</th><th>ok</th><th>fail</th><th>info</th></tr>",
    );
    for (name, by) in &sc.ops {
        let n = |k: &str| by.get(k).copied().unwrap_or(0);
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            n("ok"),
            n("fail"),
            n("info")
        );
    }
    let _ = write!(
        s,
        "</table><table>\
         <tr><th>objects compared between replicas / differing</th><td>{} / {}</td></tr>\
         <tr><th>objects required present / absent; scratch points checked</th><td>{} / {}; {}</td></tr>\
         <tr><th>contradicting the operations</th><td>{}</td></tr>\
         <tr><th>main elements a DELETE may have removed (present everywhere)</th><td>{} ({})</td></tr>\
         <tr><th>main elements a DELETE must have removed / still present</th><td>{} / {}</td></tr></table>",
        sc.compared,
        sc.differences,
        sc.required_present,
        sc.required_absent,
        sc.scratch_points_checked,
        sc.violations,
        d.may_be_deleted,
        d.may_be_deleted_present,
        d.must_be_deleted,
        d.deleted_present
    );
    if !sc.difference_list.is_empty() {
        s.push_str("<h3>Differences between replicas</h3><table><tr><th>what</th><th>nodes</th><th>values</th></tr>");
        for x in sc.difference_list.iter().take(100) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>n{} / n{}</td><td>{}<br>{}</td></tr>",
                esc(&x.what),
                x.nodes[0],
                x.nodes[1],
                esc(&x.values[0].to_string()),
                esc(&x.values[1].to_string())
            );
        }
        s.push_str("</table>");
    }
    if !sc.violation_list.is_empty() {
        s.push_str("<h3>Contradicting the operations</h3><table><tr><th>what</th><th>rule</th><th>ops</th><th>nodes</th></tr>");
        for v in sc.violation_list.iter().take(100) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{:?}</td></tr>",
                esc(&v.what),
                esc(&v.rule),
                v.ops,
                v.nodes
            );
        }
        s.push_str("</table>");
    }
    if !d.deleted_present_elements.is_empty() {
        let shown: Vec<String> = d
            .deleted_present_elements
            .iter()
            .take(200)
            .map(u64::to_string)
            .collect();
        let _ = write!(s, "<h3>deleted but present</h3><p>{}</p>", shown.join(" "));
    }
    s
}

/// One line of JSON.
/// Membership over time, one lane per Raft id (voter or learner while it is a member), with
/// the faults in a lane above on the same time axis: a change can be read against the fault
/// that caused it.
pub fn membership_svg(history: &[Event]) -> String {
    const LANE: f64 = 22.0;
    let end = history.last().map_or(1.0, |e| secs(e.time)).max(1.0);
    let changes: Vec<&Event> = history.iter().filter(|e| e.f == F::Members).collect();
    // Ids in the order they first appear, each with the last node known to hold it.
    let mut ids: Vec<(u64, Option<u8>)> = Vec::new();
    for e in &changes {
        for m in e.members.iter().flatten() {
            match ids.iter_mut().find(|(id, _)| *id == m.id) {
                Some(known) => known.1 = m.node.or(known.1),
                None => ids.push((m.id, m.node)),
            }
        }
    }
    let height = TOP + LANE * (ids.len() + 1) as f64 + BOTTOM;
    let x = |t: f64| LEFT + t / end * (W - LEFT - RIGHT);
    let lane_y = |i: usize| TOP + LANE * i as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="11">
<rect x="0" y="0" width="{W}" height="{height}" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="14">Membership and faults</text>
<text x="{}" y="{}" text-anchor="middle">time (s)</text>
<text x="{}" y="{}" text-anchor="end">faults</text>"#,
        W / 2.0,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        height - 8.0,
        LEFT - 6.0,
        lane_y(0) + 15.0
    );
    for p in periods(history, end) {
        let (x0, x1) = (x(p.start), x(p.stop));
        let _ = writeln!(
            svg,
            r#"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="{NEMESIS}" fill-opacity="0.08"/><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{NEMESIS}" fill-opacity="0.6"><title>{}</title></rect>"#,
            (x1 - x0).max(1.0),
            LANE * (ids.len() + 1) as f64,
            lane_y(0) + 4.0,
            (x1 - x0).max(1.0),
            LANE - 8.0,
            esc(&format!("{} {:.1}s - {:.1}s", p.label, p.start, p.stop)),
        );
    }
    for e in history.iter().filter(|e| e.f == F::Crash) {
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{FAIL}" stroke-width="2"><title>{3}</title></line>"#,
            x(secs(e.time)),
            lane_y(0) + 2.0,
            lane_y(0) + LANE - 2.0,
            esc(e.error.as_deref().unwrap_or("crash")),
        );
    }
    for (i, (id, node)) in ids.iter().enumerate() {
        let y = lane_y(i + 1);
        let label = node.map_or(format!("id {id}"), |n| format!("id {id} (n{n})"));
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 15.0,
            esc(&label)
        );
        // Each change holds until the next one.
        for (k, e) in changes.iter().enumerate() {
            let Some(m) = e.members.iter().flatten().find(|m| m.id == *id) else {
                continue;
            };
            let from = secs(e.time);
            let to = changes.get(k + 1).map_or(end, |n| secs(n.time));
            let (fill, opacity) = if m.kind == "voter" {
                (OK, 1.0)
            } else {
                (INFO, 0.7)
            };
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}" fill-opacity="{opacity}"><title>{} {} {from:.1}s - {to:.1}s</title></rect>"#,
                x(from),
                y + 4.0,
                (x(to) - x(from)).max(1.0),
                LANE - 8.0,
                esc(&label),
                esc(&m.kind),
            );
        }
    }
    let axis_y = TOP + LANE * (ids.len() + 1) as f64;
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#888"/>"##,
        W - RIGHT
    );
    let step = nice_step(end / 10.0);
    let mut t = 0.0;
    while t <= end + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{axis_y}" x2="{0:.1}" y2="{1}" stroke="#888"/><text x="{0:.1}" y="{2}" text-anchor="middle">{t}</text>"##,
            x(t),
            axis_y + 4.0,
            axis_y + 16.0,
        );
        t += step;
    }
    let mut lx = W - RIGHT - 180.0;
    for (name, c) in [("voter", OK), ("learner", INFO)] {
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{c}"/><text x="{}" y="{}">{name}</text>"#,
            TOP - 14.0,
            lx + 14.0,
            TOP - 5.0
        );
        lx += 90.0;
    }
    svg.push_str("</svg>\n");
    svg
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::NemesisValue;

    #[test]
    fn plots_shade_nemesis_periods_and_draw_every_outcome() {
        let mut h = Vec::new();
        let mut push = |time: u64, kind: Type, f: F, op: u64| {
            let mut e = Event::new("c1", kind, f, op);
            e.time = time;
            if matches!(f, F::Start | F::Stop) {
                e.nemesis = Some(NemesisValue {
                    kind: "kill-gateway".into(),
                    nodes: vec![1],
                    detail: String::new(),
                    offsets_s: Vec::new(),
                });
            }
            h.push(e);
        };
        push(0, Type::Invoke, F::Write, 1);
        push(2_000_000, Type::Ok, F::Write, 1);
        push(1_000_000_000, Type::Info, F::Start, 2);
        push(1_100_000_000, Type::Invoke, F::Write, 3);
        push(1_200_000_000, Type::Fail, F::Write, 3);
        push(2_000_000_000, Type::Invoke, F::Write, 4);
        push(3_000_000_000, Type::Info, F::Stop, 5);
        push(4_000_000_000, Type::Info, F::Write, 4);
        let t = throughput_svg(&h);
        assert!(t.contains("fill-opacity=\"0.08\""), "nemesis period shaded");
        assert_eq!(t.matches("<polyline").count(), 3);
        let l = latency_svg(&h);
        for c in [OK, INFO, FAIL] {
            assert!(l.contains(c));
        }
        assert_eq!(l.matches("<circle").count(), 3);
    }

    #[test]
    fn membership_lanes_follow_each_id_with_the_faults_above() {
        use crate::history::MemberValue;
        let member = |id: u64, kind: &str, node: Option<u8>| MemberValue {
            id,
            kind: kind.into(),
            node,
        };
        let mut h = Vec::new();
        let mut change = |time: u64, members: Vec<MemberValue>| {
            let mut e = Event::new("membership", Type::Info, F::Members, 0);
            e.time = time;
            e.members = Some(members);
            h.push(e);
        };
        change(
            0,
            vec![member(1, "voter", Some(1)), member(2, "voter", Some(2))],
        );
        change(
            2_000_000_000,
            vec![member(2, "voter", Some(2)), member(3, "learner", Some(1))],
        );
        change(
            3_000_000_000,
            vec![member(2, "voter", Some(2)), member(3, "voter", Some(1))],
        );
        let mut start = Event::new("nemesis", Type::Info, F::Start, 1);
        start.time = 1_000_000_000;
        start.nemesis = Some(NemesisValue {
            kind: "membership".into(),
            nodes: vec![1],
            detail: String::new(),
            offsets_s: Vec::new(),
        });
        let mut stop = start.clone();
        stop.f = F::Stop;
        stop.time = 2_500_000_000;
        h.insert(1, start);
        h.insert(3, stop);
        let svg = membership_svg(&h);
        // Id 1 was last seen on n1 (its node then); id 3 is n1 now.
        assert!(
            svg.contains("id 1 (n1)") && svg.contains("id 2 (n2)") && svg.contains("id 3 (n1)")
        );
        assert_eq!(svg.matches("<title>id 2 (n2) voter").count(), 3);
        assert_eq!(svg.matches("<title>id 3 (n1) learner").count(), 1);
        assert_eq!(svg.matches("<title>id 1 (n1) voter").count(), 1);
        assert!(svg.contains("<title>membership 1.0s - 2.5s</title>"));
    }

    #[test]
    fn the_schema_section_lists_differences_and_contradictions() {
        let mut r = CheckResult::default();
        r.schema
            .ops
            .insert("drop-user".into(), [("ok".to_owned(), 2)].into());
        r.schema
            .difference_list
            .push(crate::schema_check::Difference {
                what: "user u<1>".into(),
                nodes: [1, 3],
                values: [serde_json::Value::Bool(true), serde_json::Value::Null],
            });
        r.schema
            .violation_list
            .push(crate::schema_check::Violation {
                what: "database d".into(),
                rule: "must be absent".into(),
                ops: vec![7],
                nodes: vec![2],
            });
        let s = schema_section(&r);
        assert!(s.contains("<td>drop-user</td><td>2</td>"), "{s}");
        assert!(
            s.contains("user u&lt;1&gt;</td><td>n1 / n3</td><td>true<br>null"),
            "{s}"
        );
        assert!(s.contains("database d</td><td>must be absent</td><td>[7]</td><td>[2]"));
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(30.0), 50.0);
        assert_eq!(nice_step(0.3), 0.5);
    }
}
