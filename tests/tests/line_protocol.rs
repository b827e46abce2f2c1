//! Ingest against the real thing: for every line of a corpus of tricky and generated lines,
//! (a) ingest accepts exactly the lines influxd 1.x parses, and (b) writing the line as the
//! client sent it and writing ingest's normalized line store exactly the same points (series,
//! timestamp, field names, types and values).

use std::time::{SystemTime, UNIX_EPOCH};

use gateway::ingest::{ingest, Precision};
use rand::{Rng, SeedableRng};
use tests::{Http, Influxd};

const CORPUS: &[&str] = &[
    "m v=1 1",
    "m v=1i 1",
    "m v=-1i 1",
    "m v=1u 1",
    "m v=1.5e3 1",
    "m v=1E-3 1",
    "m v=-0.5 1",
    "m v=.5 1",
    "m v=5. 1",
    "m v=1e 1",
    "m v=+1 1",
    "m v=NaN 1",
    "m v=inf 1",
    "m v=t 1",
    "m v=T 1",
    "m v=true 1",
    "m v=True 1",
    "m v=TRUE 1",
    "m v=f 1",
    "m v=F 1",
    "m v=false 1",
    "m v=False 1",
    "m v=FALSE 1",
    "m v=tRUE 1",
    "m v=\"str\" 1",
    // Strings that read as another type once their quotes are lost: stored as strings.
    "m v=\"true\",w=\"12\",x=\"1i\",y=\"e15\" 1",
    "m v=\"with \\\"quotes\\\"\" 1",
    "m v=\"back\\\\slash\" 1",
    "m v=\"a\\nb\" 1",
    "m v=\"multi\nline\" 1",
    "m v=\"\" 1",
    "m v=\"unterminated 1",
    "m v=\"a,b c=d\" 1",
    "m,t=1 v=1 1",
    "m,t=1,t=2 v=1 1",
    "m v=1,v=2 1",
    "m,t= v=1 1",
    "m,=x v=1 1",
    "m, v=1 1",
    ",t=1 v=1 1",
    "m\\ x v=1 1",
    "m\\,x v=1 1",
    "m,t\\ k=v\\ 1 f\\ k=1 1",
    "m,t=a\\,b v=1 1",
    "m,t=a\\=b v=1 1",
    "m,t=\"q\" v=1 1",
    "m,b=2,a=1 v=1 1",
    "m v=1 1 extra",
    "m v=1 1.5",
    "m v=1 -1",
    "m v=1 9223372036854775806",
    "m v=1 9223372036854775807",
    "m v=1 -9223372036854775806",
    "m v=1 -9223372036854775807",
    "m v=1 99999999999999999999",
    "m v=1 abc",
    "m v=9223372036854775807i 1",
    "m v=9223372036854775808i 1",
    "m v=-9223372036854775808i 1",
    "m v=1e308 1",
    "m v=1e309 1",
    "m v=0.1000000000000000055511151231257827 1",
    "m v=123456789012345678901234567890 1",
    "m  v=1 1",
    "m v=1  1",
    "m\tv=1 1",
    " m v=1 1",
    "m v=1 1   ",
    "m time=1 1",
    "m,time=x v=1 1",
    "m v=1,w=\"s\",x=t,y=2i 1",
    "m,t=v\\ v=1 1",
    "é,ü=ß ñ=1 1",
    "m v=\"é 漢字\" 1",
    "m v=1,",
    "m v= 1",
    "m =1 1",
    "m v 1",
    "m",
    "m,t=1",
    "m v=1 1\r",
    "m,t=a v=1,t=2 1",
    "m,t=\\\\ v=1 1",
    "m v=\"\\\\\" 1",
    "m v=\"x\\\" 1",
    "m v=1i,w=1.0,w2=-1.0e-5 1",
    "m v=--1 1",
    "m f\\\\=\"s \\\" ,=\" 1",
    "m,t\\\\=x v=1 1",
    "m v=1-1 1",
    "m v=1.e5 1",
    "m v=-.5 1",
    "m v=1E+5 1",
    "m v=1e-400 1",
    "m v=00001i 1",
    "m v=1i5 1",
    "m v=1.5i 1",
    "m,t=a\tb v=1 1",
    "m\tx v=1 1",
    "m v=1 \t1",
    "m v=1 1\t",
    "m v=1 -",
    "m,b=1,a=2,b=3 v=1 1",
    "m v=\"a\",w=1 1",
    "m,t=a v=1,w=\"x\"y\" 1",
];

/// Where ingest knowingly differs from influxd 1.6, always by refusing what influxd would take
/// (safe: nothing misread enters the log), except for CRLF, which it takes as a line ending:
/// a string value not followed by a separator (`"a""b"`, `"a"123`): influxd glues what
/// follows onto the value.
fn known_difference(line: &str) -> bool {
    let b = line.as_bytes();
    if line.ends_with('\r') {
        return true;
    }
    let mut glued = false;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'=' && b[i + 1] == b'"' {
            let mut j = i + 2;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            glued |= j + 1 < b.len() && !matches!(b[j + 1], b' ' | b',');
            i = j;
        }
        i += 1;
    }
    glued
}

/// Whether influxd's answer to a one-line write says the line did not parse (storage-level
/// rejections such as a field named `time` are not parse errors).
fn influxd_parses(http: &Http, db: &str, line: &str, precision: &str) -> bool {
    let r = http
        .write(&format!("db={db}&precision={precision}"), line)
        .unwrap();
    !(r.status == 400 && r.error().contains("unable to parse"))
}

/// Points and field types of a database; without the time column when the two writes being
/// compared were stamped by different clocks.
fn contents(http: &Http, db: &str, with_time: bool) -> String {
    let mut points = http.query_ok(db, "SELECT * FROM /.*/ GROUP BY *");
    if !with_time {
        for series in points["results"][0]["series"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            for row in series["values"].as_array_mut().into_iter().flatten() {
                row[0] = serde_json::Value::Null;
            }
        }
    }
    let fields = http.query_ok(db, "SHOW FIELD KEYS");
    format!("{}\n{}", points["results"][0], fields["results"][0])
}

/// A line as a failure shows it: quoted, and cut short past 200 characters.
fn shown(line: &str) -> String {
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{:?}... ({} bytes)", &line[..at], line.len()),
        None => format!("{line:?}"),
    }
}

/// A random line: mostly valid, sometimes damaged in one place.
fn generated(rng: &mut rand::rngs::StdRng) -> String {
    let ident = |rng: &mut rand::rngs::StdRng| -> String {
        let parts = ["cpu", "a b", "x,y", "k=v", "é", "\\", "t", "_x", "0"];
        let raw = parts[rng.gen_range(0..parts.len())];
        // Escape for identifiers: commas, spaces and equals signs.
        raw.replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace(' ', "\\ ")
            .replace('=', "\\=")
    };
    let mut line = ident(rng).replace("\\=", "=");
    for i in 0..rng.gen_range(0..3) {
        line += &format!(",{}{i}={}", ident(rng), ident(rng));
    }
    line.push(' ');
    for i in 0..rng.gen_range(1..4) {
        if i > 0 {
            line.push(',');
        }
        let value = match rng.gen_range(0..5) {
            0 => format!("{}", rng.gen_range(-1e6..1e6)),
            1 => format!("{}i", rng.gen::<i32>()),
            2 => ["t", "false", "T", "FALSE"][rng.gen_range(0..4)].to_owned(),
            3 => format!("\"s {} \\\" ,=\"", rng.gen::<u16>()),
            _ => format!("{}e{}", rng.gen_range(1..9), rng.gen_range(-20..20)),
        };
        line += &format!("f{i}{}={value}", ident(rng));
    }
    line += &format!(
        " {}",
        rng.gen_range(-1_000_000_000i64..2_000_000_000_000_000_000)
    );
    if rng.gen_bool(0.15) {
        // Damage: drop, double or swap one byte.
        let mut bytes = line.into_bytes();
        let at = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..3) {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, bytes[at]),
            _ => bytes[at] = b"= ,\"\\\0"[rng.gen_range(0..6)],
        }
        line = String::from_utf8_lossy(&bytes).into_owned();
    }
    line
}

#[test]
fn ingest_agrees_with_influxd() {
    let dir = tempfile::tempdir().unwrap();
    let influxd = Influxd::start("127.0.0.1:28286", dir.path());
    let http = influxd.http();
    // LP_SEED and LP_CASES run a longer search than CI's.
    let seed = std::env::var("LP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let generated_cases = std::env::var("LP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut cases: Vec<(String, &str, Precision)> = CORPUS
        .iter()
        .map(|l| (l.to_string(), "ns", Precision::Nanoseconds))
        .collect();
    for l in ["m v=1 1700000000", "m,t=x v=2i -5", "m v=1 9223372036"] {
        cases.push((l.to_owned(), "s", Precision::Seconds));
        cases.push((l.to_owned(), "ms", Precision::Milliseconds));
        cases.push((l.to_owned(), "h", Precision::Hours));
    }
    // NUL bytes, and series keys at influxd's limit of 65,535 bytes and one past it.
    for l in [
        "m\0x v=1 1",
        "m,t=a\0b v=1 1",
        "m,t\0k=a v=1 1",
        "m f\0k=1 1",
        "m v=\"a\0b\" 1",
        "m v=1\0 1",
        "m v=1 1\0",
    ] {
        cases.push((l.to_owned(), "ns", Precision::Nanoseconds));
    }
    // influxd refuses a line whose series key, 4 bytes and a field key come to more than
    // 65,535 bytes: each line here comes to 65,535 or 65,536 (`\\ ` is two bytes of the key as
    // influxd counts it, escaped).
    for size in [65_535, 65_536] {
        let series = |prefix: &str, unit: &str, suffix: &str| {
            let key = size - "#!~#v".len();
            let mut k = prefix.to_owned();
            while k.len() + unit.len() + suffix.len() <= key {
                k += unit;
            }
            let fill = key - k.len() - suffix.len();
            k + &"x".repeat(fill) + suffix
        };
        for series in [
            series("m", "x", ""),
            series("m,t=", "x", ""),
            series("m,t=", "\\ ", ""),
            series("m,", "k", "=v"),
            series("m,a=1,b=2,c=", "x", ",d=4"),
        ] {
            cases.push((format!("{series} v=1 1"), "ns", Precision::Nanoseconds));
        }
        let field = "f".repeat(size - "m#!~#".len());
        cases.push((format!("m {field}=1 1"), "ns", Precision::Nanoseconds));
    }
    for _ in 0..generated_cases {
        cases.push((generated(&mut rng), "ns", Precision::Nanoseconds));
    }

    let mut disagreements = Vec::new();
    for (i, (line, precision, p)) in cases.iter().enumerate() {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        influxd.create_database(&a);
        influxd.create_database(&b);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let batch = ingest(line.as_bytes(), *p, now);
        let ours = batch.parse_error.is_none() && batch.points > 0;
        if std::env::var("LP_DEBUG").is_ok() {
            eprintln!("case {i}: {line:?}");
        }
        if batch
            .parse_error
            .as_deref()
            .is_some_and(|e| e.ends_with(gateway::ingest::MISREAD_ESCAPE))
        {
            // Refused on purpose: influxd 1.6 misreads these escapes, and some crash it.
            http.query_ok("", &format!("DROP DATABASE {a}; DROP DATABASE {b}"));
            continue;
        }
        let theirs = influxd_parses(&http, &a, line, precision);
        if ours != theirs && !known_difference(line) {
            disagreements.push(format!(
                "{} (precision {precision}): influxd {}, ingest {} ({:?})",
                shown(line),
                if theirs { "parses it" } else { "refuses it" },
                if ours { "accepts it" } else { "refuses it" },
                batch.parse_error
            ));
        } else if ours && theirs {
            let normalized = String::from_utf8(batch.lines).unwrap();
            let r = http.write(&format!("db={b}"), &normalized).unwrap();
            assert!(
                r.status == 204 || !r.error().contains("unable to parse"),
                "influxd cannot parse ingest's output {} for {}: {}",
                shown(&normalized),
                shown(line),
                r.body
            );
            // A line without a timestamp got ingest's clock and influxd's own: compare all
            // but the time.
            let stamped = normalized.trim_end().ends_with(&format!(" {now}"));
            let (want, got) = (contents(&http, &a, !stamped), contents(&http, &b, !stamped));
            assert_eq!(
                got,
                want,
                "{} (precision {precision}) stored differently once normalized to {}",
                shown(line),
                shown(&normalized)
            );
        }
        http.query_ok("", &format!("DROP DATABASE {a}; DROP DATABASE {b}"));
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
