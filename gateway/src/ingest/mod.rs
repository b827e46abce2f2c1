//! Ingest: a line protocol body in, a deterministic batch out.
//!
//! Every line is checked against influxd 1.x's own grammar (`line.rs`) before it may enter the
//! log, so malformed input never does. A valid line is kept exactly as the client wrote it,
//! except for its timestamp: that is rewritten in nanoseconds, and a line without one gets the
//! receiving node's clock (truncated to the request's precision, as influxd does). The batch
//! is then a pure function of its bytes: replaying it on any replica, at any time, writes the
//! same points. Keeping the client's text rather than re-printing the parsed line means no
//! float, escape or string is ever re-encoded, so nothing can change meaning on the way.
//!
//! Error messages follow influxd 1.x: `unable to parse '<line>': <reason>`, one per bad line.
//!
//! Prometheus remote write requests become such a batch too (`prom.rs`).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

mod line;
pub mod prom;

pub use line::MISREAD_ESCAPE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

/// A `precision` parameter the endpoint does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid precision {given:?} (use {accepted})")]
pub struct PrecisionError {
    given: String,
    accepted: &'static str,
}

impl Precision {
    /// The `precision` of `/write`. influxd 1.x silently treats an unknown value as
    /// nanoseconds; a typo there would shift every timestamp by orders of magnitude, so it is
    /// refused instead.
    pub fn from_v1(param: Option<&str>) -> Result<Precision, PrecisionError> {
        Ok(match param.unwrap_or("") {
            "" | "n" | "ns" => Precision::Nanoseconds,
            "u" | "us" | "µ" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            other => {
                return Err(PrecisionError {
                    given: other.to_owned(),
                    accepted: "n, ns, u, us, ms, s, m or h",
                })
            }
        })
    }

    /// The `precision` of `/api/v2/write`.
    pub fn from_v2(param: Option<&str>) -> Result<Precision, PrecisionError> {
        Ok(match param.unwrap_or("") {
            "" | "ns" => Precision::Nanoseconds,
            "us" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            other => {
                return Err(PrecisionError {
                    given: other.to_owned(),
                    accepted: "ns, us, ms or s",
                })
            }
        })
    }

    pub fn nanos(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }
}

/// influxd's bounds for a timestamp (`models.MinNanoTime` / `MaxNanoTime`): the extremes of
/// int64 are reserved.
const MIN_NANOS: i64 = i64::MIN + 2;
const MAX_NANOS: i64 = i64::MAX - 1;

#[derive(Debug)]
pub struct Batch {
    /// The valid lines, one point per line, each ending in its nanosecond timestamp.
    pub lines: Vec<u8>,
    pub points: usize,
    /// influxd's message for the lines that failed to parse, one `unable to parse` per line
    /// joined by newlines; `None` when every line parsed.
    pub parse_error: Option<String>,
}

/// This node's clock in nanoseconds since the epoch: the stamp of points sent without one.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub fn ingest(body: &[u8], precision: Precision, now_ns: i64) -> Batch {
    let mut batch = Batch {
        lines: Vec::with_capacity(body.len() + body.len() / 8),
        points: 0,
        parse_error: None,
    };
    let mut errors = String::new();
    // Points without a timestamp are stamped once, here, at the precision asked for.
    let stamp = now_ns - now_ns.rem_euclid(precision.nanos());
    match std::str::from_utf8(body) {
        Ok(text) => {
            for line in lines(text) {
                ingest_line(line, precision, stamp, &mut batch, &mut errors);
            }
        }
        // Rare: a body that is not UTF-8. Lines are then cut at newlines only (a quoted string
        // spanning lines in such a body is not supported), and only the lines that are not
        // UTF-8 are refused.
        Err(_) => {
            for raw in body.split(|&b| b == b'\n') {
                match std::str::from_utf8(raw) {
                    Ok(line) => ingest_line(line, precision, stamp, &mut batch, &mut errors),
                    Err(_) => reject(&mut errors, &String::from_utf8_lossy(raw), "invalid UTF-8"),
                }
            }
        }
    }
    if !errors.is_empty() {
        batch.parse_error = Some(errors);
    }
    batch
}

/// The lines of a body, as influxd cuts them: at newlines, except inside a quoted string
/// value. A stretch without any `"` cannot hold a quoted newline, so it is cut with `memchr`;
/// only lines with quotes go through influxd's quote-aware rule.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest.as_bytes()).unwrap_or(rest.len());
        let line = if memchr::memchr(b'"', &rest.as_bytes()[..end]).is_none() {
            &rest[..end]
        } else {
            &rest[..line::line_len(rest.as_bytes())]
        };
        rest = rest.get(line.len() + 1..).unwrap_or("");
        Some(line)
    })
}

fn ingest_line(
    line: &str,
    precision: Precision,
    stamp: i64,
    batch: &mut Batch,
    errors: &mut String,
) {
    // influxd skips blank lines and `#` comments.
    let line = line.strip_suffix('\r').unwrap_or(line);
    let trimmed = line.trim_start_matches([' ', '\t']).trim_end_matches(' ');
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return;
    }
    let scanned = match line::scan(trimmed.as_bytes()) {
        Ok(scanned) => scanned,
        Err(reason) => return reject(errors, trimmed, &reason),
    };
    let ts = match scanned.timestamp {
        Some(t) => {
            let Some(ns) = t
                .checked_mul(precision.nanos())
                .filter(|ns| (MIN_NANOS..=MAX_NANOS).contains(ns))
            else {
                return reject(errors, trimmed, &format!("time outside range {t}"));
            };
            ns
        }
        None => stamp,
    };
    // The fields end at a space or at the end of the line, a character boundary.
    batch
        .lines
        .extend_from_slice(&trimmed.as_bytes()[..scanned.fields_end]);
    batch.lines.push(b' ');
    let mut buf = itoa::Buffer::new();
    batch.lines.extend_from_slice(buf.format(ts).as_bytes());
    batch.lines.push(b'\n');
    batch.points += 1;
}

fn reject(errors: &mut String, line: &str, reason: &str) {
    if !errors.is_empty() {
        errors.push('\n');
    }
    let _ = write!(errors, "unable to parse '{line}': {reason}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str, p: Precision) -> String {
        let b = ingest(body.as_bytes(), p, 1_700_000_000_123_456_789);
        assert!(b.parse_error.is_none(), "{body:?}: {:?}", b.parse_error);
        String::from_utf8(b.lines).unwrap()
    }

    #[test]
    fn timestamps_become_nanoseconds() {
        assert_eq!(ok("m v=1 5", Precision::Nanoseconds), "m v=1 5\n");
        assert_eq!(ok("m v=1 5", Precision::Seconds), "m v=1 5000000000\n");
        assert_eq!(ok("m v=1 -5", Precision::Milliseconds), "m v=1 -5000000\n");
        assert_eq!(ok("m v=1 2", Precision::Hours), "m v=1 7200000000000\n");
        assert_eq!(ok("m v=1 2  ", Precision::Minutes), "m v=1 120000000000\n");
    }

    #[test]
    fn missing_timestamps_get_the_node_clock_at_the_precision() {
        assert_eq!(
            ok("m v=1", Precision::Nanoseconds),
            "m v=1 1700000000123456789\n"
        );
        assert_eq!(
            ok("m v=1", Precision::Seconds),
            "m v=1 1700000000000000000\n"
        );
        assert_eq!(
            ok("m v=1", Precision::Microseconds),
            "m v=1 1700000000123456000\n"
        );
        assert_eq!(
            ok("m v=1  ", Precision::Nanoseconds),
            "m v=1 1700000000123456789\n"
        );
    }

    #[test]
    fn text_is_kept_exactly() {
        let lines = [
            r#"m\ x,t\=1=a\,b\ c f\,1="str \"q\" \\ , =",i=-3i,b=T,e=1.5e-300 10"#,
            r#"m s="a trailing 123" 10"#,
            r#"m s="multi
line" 10"#,
            "weather,location=us-midwest temperature=82 1465839830100400200",
            "m,t=é v=0.1000000000000000055511151231257827 1",
        ];
        for l in lines {
            assert_eq!(ok(l, Precision::Nanoseconds), format!("{l}\n"), "{l}");
        }
        // A string that ends in digits is not mistaken for a timestamp.
        assert_eq!(
            ok(r#"m s="x 12""#, Precision::Nanoseconds),
            "m s=\"x 12\" 1700000000123456789\n"
        );
    }

    #[test]
    fn blank_lines_comments_and_crlf() {
        let out = ok(
            "\n  # a comment\nm v=1 1\r\n\t\n   m v=2 2\n",
            Precision::Nanoseconds,
        );
        assert_eq!(out, "m v=1 1\nm v=2 2\n");
        let empty = ingest(b"", Precision::Nanoseconds, 0);
        assert_eq!((empty.points, empty.parse_error), (0, None));
    }

    #[test]
    fn bad_lines_are_reported_as_influxd_reports_them() {
        let b = ingest(
            b"m v=1 1\nbad line\nbad\nm v=1u 2\nm v=1e999 3\nm v=1 99999999999999999999\nm v=1 9223372036854775807\nm v=2 2",
            Precision::Nanoseconds,
            0,
        );
        assert_eq!(b.points, 2);
        assert_eq!(String::from_utf8(b.lines).unwrap(), "m v=1 1\nm v=2 2\n");
        let e = b.parse_error.unwrap();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 6, "{e}");
        assert_eq!(lines[0], "unable to parse 'bad line': invalid field format");
        assert_eq!(lines[1], "unable to parse 'bad': missing fields");
        assert_eq!(lines[2], "unable to parse 'm v=1u 2': invalid number");
        assert_eq!(lines[3], "unable to parse 'm v=1e999 3': invalid float");
        assert_eq!(
            lines[4],
            "unable to parse 'm v=1 99999999999999999999': strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert!(
            lines[5].ends_with("time outside range 9223372036854775807"),
            "{e}"
        );
    }

    #[test]
    fn precision_overflow_is_outside_range() {
        let b = ingest(b"m v=1 9223372036854", Precision::Seconds, 0);
        assert_eq!(b.points, 0);
        assert!(b.parse_error.unwrap().contains("time outside range"));
    }

    #[test]
    fn non_utf8_lines_are_refused_alone() {
        let b = ingest(
            b"m v=1 1\nm,t=\xff v=1 2\nm v=3 3",
            Precision::Nanoseconds,
            0,
        );
        assert_eq!(b.points, 2);
        assert!(b.parse_error.unwrap().ends_with("invalid UTF-8"));
    }

    #[test]
    fn lines_influxd_would_misread_never_enter_the_batch() {
        let b = ingest(
            br#"m v=1 1
m f\\="s \" ,=" 2
m,t=a=b v=1 3"#,
            Precision::Nanoseconds,
            0,
        );
        assert_eq!(b.points, 1);
        let e = b.parse_error.unwrap();
        assert!(
            e.contains(MISREAD_ESCAPE) && e.contains("invalid tag format"),
            "{e}"
        );
    }

    #[test]
    fn precisions() {
        assert_eq!(Precision::from_v1(None), Ok(Precision::Nanoseconds));
        assert_eq!(Precision::from_v1(Some("u")), Ok(Precision::Microseconds));
        assert_eq!(Precision::from_v1(Some("h")), Ok(Precision::Hours));
        assert!(Precision::from_v1(Some("sec")).is_err());
        assert_eq!(Precision::from_v2(Some("ms")), Ok(Precision::Milliseconds));
        assert!(Precision::from_v2(Some("h")).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn line_protocol_ish() -> impl Strategy<Value = String> {
        // Mostly the characters that matter to the grammar, so the odd cases come up often.
        proptest::collection::vec(
            prop_oneof![
                Just("m"),
                Just("v"),
                Just("="),
                Just(","),
                Just(" "),
                Just("\""),
                Just("\\"),
                Just("\n"),
                Just("1"),
                Just("i"),
                Just("."),
                Just("-"),
                Just("t"),
                Just("é"),
                Just("#"),
                Just("\t"),
                Just("e")
            ],
            0..60,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

        /// Whatever comes in, ingest ends, and what it lets through is valid line protocol
        /// that ingest itself passes unchanged: the batch in the log is a fixed point.
        #[test]
        fn output_is_a_fixed_point(body in line_protocol_ish(), seconds in any::<bool>()) {
            let p = if seconds { Precision::Seconds } else { Precision::Nanoseconds };
            let first = ingest(body.as_bytes(), p, 1_000_000_000_000);
            let again = ingest(&first.lines, Precision::Nanoseconds, 7);
            prop_assert_eq!(again.parse_error, None);
            prop_assert_eq!(again.points, first.points);
            prop_assert_eq!(again.lines, first.lines);
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `cargo test --release -p gateway ingest_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn ingest_speed() {
        let body: String = (0..5000u64)
            .map(|t| format!("cpu,host=server{:03},region=eu-{} usage_user={}.{},usage_system={}.{},usage_idle={}i {}\n", t % 200, t % 4, t % 97, t % 10, t % 13, t % 7, t % 100, 1_600_000_000_000_000_000u64 + t))
            .collect();
        let start = std::time::Instant::now();
        let mut n = 0;
        while start.elapsed().as_secs_f64() < 2.0 {
            n += ingest(body.as_bytes(), Precision::Nanoseconds, 0).points;
        }
        eprintln!("{:.0} lines/s", n as f64 / start.elapsed().as_secs_f64());
    }
}
