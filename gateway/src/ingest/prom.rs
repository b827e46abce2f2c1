//! Prometheus remote write: a snappy-compressed protobuf `WriteRequest` in, the same line
//! protocol batch as `/write` out, so its samples go through the log like any write.
//!
//! The conversion is influxd 1.6's (`prometheus/converters.go`), rule for rule: one point per
//! sample in the measurement named by `__name__` (`prom_metric_not_specified` without one),
//! every label a tag (`__name__` too, so remote read can give it back; a repeated label keeps
//! its last value), the sample in the float field `value`, its millisecond timestamp in
//! nanoseconds (multiplied as Go does, wrapping on overflow). NaN samples, which Prometheus
//! uses for staleness markers, are dropped; anything `models.NewPoint` refuses (±Inf, a time
//! out of range, a key too long) fails the whole request with influxd's message.
//!
//! influxd writes those points without ever printing them; here they must survive being
//! printed as line protocol and read again by influxd's parser. The key is printed as
//! `models.MakeKey` builds it, so when the parser reads it back it stores the very same series
//! key. The few keys its scanner would cut elsewhere (a name ending in a backslash, a newline,
//! a metric name starting with a blank or `#`, label names that sort differently once escaped)
//! are refused, and the printed batch must pass ingest like any `/write` body.

use std::collections::BTreeMap;
use std::io::Write as _;

use super::{ingest, Batch, Precision, MAX_NANOS, MIN_NANOS};

/// The name of a series without `__name__`, as influxd 1.6 names it.
const DEFAULT_MEASUREMENT: &str = "prom_metric_not_specified";
const NAME_LABEL: &str = "__name__";
const FIELD: &str = "value";
/// influxd's `models.MaxKeyLength`, checked on the series key plus the field.
const MAX_KEY_LENGTH: usize = 65535;

/// The messages of Prometheus's `remote.proto` that a write uses. Fields added since
/// (metadata, exemplars, histograms) are skipped when decoding, as influxd 1.6 skips them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Why a remote write body was refused. Nothing of it is written.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    /// The body says it decompresses to more than the limit allows.
    #[error("snappy: decompressed body of {size} bytes is over the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// What `models.NewPoint` says of a sample, in its words.
    #[error("{0}")]
    Point(String),
    /// A series influxd would store, but whose key no line protocol reads back as the same.
    #[error("series {key:?} cannot be written through the gateway: {reason}")]
    Unreadable { key: String, reason: &'static str },
    /// A printed batch that ingest refuses, as it would refuse it on `/write`.
    #[error("cannot be written through the gateway: {0}")]
    Ingest(String),
}

impl PromError {
    /// 413 for a body over the limit, 400 for everything else, as influxd answers.
    pub fn too_large(&self) -> bool {
        matches!(self, PromError::TooLarge { .. })
    }
}

/// Decompresses (snappy's block format, as Prometheus sends it) and decodes a body; the
/// decompressed size is bounded by `max` before anything is allocated for it.
pub fn decode(body: &[u8], max: usize) -> Result<WriteRequest, PromError> {
    let size = snap::raw::decompress_len(body)?;
    if size > max {
        return Err(PromError::TooLarge { size, max });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(prost::Message::decode(raw.as_slice())?)
}

/// The samples of `req` as line protocol, each line a point influxd 1.6 would have made of it.
pub fn convert(req: &WriteRequest) -> Result<Batch, PromError> {
    let mut lines = Vec::new();
    let mut points = 0;
    let mut ts_buf = itoa::Buffer::new();
    for series in &req.timeseries {
        let key = SeriesKey::of(series);
        for sample in &series.samples {
            if sample.value.is_nan() {
                continue;
            }
            // NewPoint's checks, in its order: time, field value, key length.
            let ns = sample.timestamp.wrapping_mul(1_000_000);
            if !(MIN_NANOS..=MAX_NANOS).contains(&ns) {
                return Err(PromError::Point(format!(
                    "time outside range {MIN_NANOS} - {MAX_NANOS}"
                )));
            }
            if sample.value.is_infinite() {
                return Err(PromError::Point(format!(
                    "+/-Inf is an unsupported value for field {FIELD}"
                )));
            }
            let size = key.text.len() + 4 + FIELD.len();
            if size > MAX_KEY_LENGTH {
                return Err(PromError::Point(format!(
                    "max key length exceeded: {size} > {MAX_KEY_LENGTH}"
                )));
            }
            if let Some(reason) = key.unreadable {
                return Err(PromError::Unreadable {
                    key: key.text,
                    reason,
                });
            }
            lines.extend_from_slice(key.text.as_bytes());
            // Rust prints the shortest decimal that reads back as the same f64, and Go's
            // ParseFloat reads it back exactly; no `i` suffix, so it stays a float.
            let _ = write!(lines, " {FIELD}={:?} ", sample.value);
            lines.extend_from_slice(ts_buf.format(ns).as_bytes());
            lines.push(b'\n');
            points += 1;
        }
    }
    // The printed batch goes through ingest like any /write body: nothing enters the log that
    // ingest would not let in, and every line must still be one point.
    let batch = ingest(&lines, Precision::Nanoseconds, 0);
    if let Some(e) = batch.parse_error {
        return Err(PromError::Ingest(e));
    }
    if batch.points != points {
        return Err(PromError::Ingest(format!(
            "{points} samples printed as {} points",
            batch.points
        )));
    }
    Ok(batch)
}

/// A series' key as `models.MakeKey` builds it, and why influxd's parser would not read it
/// back as the same key, if it would not.
struct SeriesKey {
    text: String,
    unreadable: Option<&'static str>,
}

impl SeriesKey {
    fn of(series: &TimeSeries) -> SeriesKey {
        let mut measurement = DEFAULT_MEASUREMENT;
        // Go fills a map label by label, so a repeated name keeps its last value; Tags are
        // then sorted by key bytes, which is a BTreeMap's order.
        let mut tags = BTreeMap::new();
        for l in &series.labels {
            tags.insert(l.name.as_str(), l.value.as_str());
            if l.name == NAME_LABEL {
                measurement = &l.value;
            }
        }
        // MakeKey unescapes the name, then escapes it, so an escape the name already holds is
        // not doubled.
        let name = escape(&unescape(measurement, b", "), b", ");
        let mut unreadable = measurement_problem(&name);
        let mut text = name;
        let mut previous: Option<String> = None;
        for (k, v) in tags {
            // MakeKey leaves tags with an empty value out of the key.
            if v.is_empty() {
                continue;
            }
            let (k, v) = (escape(k, b", ="), escape(v, b", ="));
            if unreadable.is_none() {
                unreadable = tag_problem(&k, &v, previous.as_deref());
            }
            text.push(',');
            text.push_str(&k);
            text.push('=');
            text.push_str(&v);
            previous = Some(k);
        }
        SeriesKey { text, unreadable }
    }
}

/// Where influxd's scanner would cut an escaped metric name differently.
fn measurement_problem(name: &str) -> Option<&'static str> {
    match name.as_bytes().first() {
        None => Some("the metric name is empty"),
        // Skipped as blank space at a line's start, or taken for a comment.
        Some(b' ' | b'\t' | b'\0' | b'#') => {
            Some("the metric name starts with a blank, a NUL or '#'")
        }
        _ => ends_badly(name),
    }
}

fn tag_problem(key: &str, value: &str, previous: Option<&str>) -> Option<&'static str> {
    if key.is_empty() {
        return Some("a label name is empty");
    }
    // The parser re-sorts a key whose tags are out of order by their escaped names, which
    // would store another series key than influxd's own conversion.
    if previous.is_some_and(|p| p >= key) {
        return Some("label names sort differently once escaped");
    }
    ends_badly(key).or_else(|| ends_badly(value))
}

/// influxd's scanner takes a delimiter right after a backslash as escaped, and a line ends at
/// a newline.
fn ends_badly(escaped: &str) -> Option<&'static str> {
    if escaped.ends_with('\\') {
        Some("a name or value ends in a backslash")
    } else if escaped.contains('\n') {
        Some("a name or value holds a newline")
    } else {
        None
    }
}

/// `models` escaping: a backslash before each of `chars`.
fn escape(s: &str, chars: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && chars.contains(&(c as u8)) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `models.unescapeMeasurement`: each `\c` of `chars` back to `c`.
fn unescape(s: &str, chars: &[u8]) -> String {
    let mut out = s.to_owned();
    for &c in chars {
        let c = c as char;
        out = out.replace(&format!("\\{c}"), &c.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(value, timestamp)| Sample { value, timestamp })
                .collect(),
        }
    }

    fn lines(ts: Vec<TimeSeries>) -> String {
        let batch = convert(&WriteRequest { timeseries: ts }).unwrap();
        String::from_utf8(batch.lines).unwrap()
    }

    fn refused(ts: Vec<TimeSeries>) -> PromError {
        convert(&WriteRequest { timeseries: ts }).unwrap_err()
    }

    #[test]
    fn samples_become_points_as_influxd_makes_them() {
        let out = lines(vec![series(
            &[("job", "node"), ("__name__", "up"), ("instance", "a:9100")],
            &[(1.0, 1_700_000_000_123), (0.5, -5)],
        )]);
        assert_eq!(
            out,
            "up,__name__=up,instance=a:9100,job=node value=1.0 1700000000123000000\n\
             up,__name__=up,instance=a:9100,job=node value=0.5 -5000000\n"
        );
    }

    #[test]
    fn without_a_name_the_default_measurement() {
        assert_eq!(
            lines(vec![series(&[("a", "b")], &[(2.0, 1)])]),
            "prom_metric_not_specified,a=b value=2.0 1000000\n"
        );
    }

    #[test]
    fn repeated_labels_keep_their_last_value_and_empty_values_leave_the_key() {
        assert_eq!(
            lines(vec![series(
                &[
                    ("__name__", "x"),
                    ("a", "1"),
                    ("e", ""),
                    ("a", "2"),
                    ("__name__", "y")
                ],
                &[(1.0, 1)]
            )]),
            "y,__name__=y,a=2 value=1.0 1000000\n"
        );
    }

    #[test]
    fn nan_is_dropped_and_inf_refuses_the_request() {
        let batch = convert(&WriteRequest {
            timeseries: vec![series(&[("__name__", "m")], &[(f64::NAN, 1), (3.0, 2)])],
        })
        .unwrap();
        assert_eq!(batch.points, 1);
        let e = refused(vec![
            series(&[("__name__", "m")], &[(1.0, 1)]),
            series(&[("__name__", "n")], &[(f64::NEG_INFINITY, 1)]),
        ]);
        assert_eq!(
            e.to_string(),
            "+/-Inf is an unsupported value for field value"
        );
    }

    #[test]
    fn timestamps_wrap_as_go_multiplies_them() {
        // 2^63 / 10^6 ms overflows; Go wraps it, and the wrapped time may be in range.
        let ms = i64::MAX / 1_000_000 + 1;
        let out = lines(vec![series(&[("__name__", "m")], &[(1.0, ms)])]);
        assert!(out.ends_with(&format!(" {}\n", ms.wrapping_mul(1_000_000))));
        // 2^57 ms wraps to i64::MIN ns (2^63 times an odd number), which influxd reserves.
        let e = refused(vec![series(&[("__name__", "m")], &[(1.0, 1 << 57)])]);
        assert!(e.to_string().starts_with("time outside range"), "{e}");
        // i64::MIN ms wraps to 0: in range, as in influxd.
        let out = lines(vec![series(&[("__name__", "m")], &[(1.0, i64::MIN)])]);
        assert!(out.ends_with(" 0\n"), "{out}");
    }

    #[test]
    fn floats_read_back_exactly() {
        for v in [
            0.1,
            -0.0,
            1e16,
            1e-7,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            123_456_789.123_456_79,
            1.0 / 3.0,
        ] {
            let out = lines(vec![series(&[("__name__", "m")], &[(v, 1)])]);
            let text = out
                .split(' ')
                .nth(1)
                .unwrap()
                .strip_prefix("value=")
                .unwrap();
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{out}");
        }
    }

    #[test]
    fn names_and_values_are_escaped_as_make_key_does() {
        assert_eq!(
            lines(vec![series(
                &[("__name__", "a b,c=d"), ("k", "v w,x=y")],
                &[(1.0, 1)]
            )]),
            "a\\ b\\,c=d,__name__=a\\ b\\,c\\=d,k=v\\ w\\,x\\=y value=1.0 1000000\n"
        );
        // An escape already in the metric name is not doubled in the measurement, but the
        // `__name__` tag keeps it raw, and `\\ ` is read otherwise by influxd 1.x.
        let e = refused(vec![series(&[("__name__", "a\\ b")], &[(1.0, 1)])]);
        assert!(matches!(e, PromError::Ingest(_)), "{e}");
    }

    #[test]
    fn keys_the_parser_would_read_otherwise_are_refused() {
        for labels in [
            vec![("__name__", "")],
            vec![("__name__", "#m")],
            vec![("__name__", "\tm")],
            vec![("__name__", "m\\")],
            vec![("__name__", "m"), ("k", "v\\")],
            vec![("__name__", "m"), ("k\\", "v")],
            vec![("__name__", "m"), ("k", "a\nb")],
            vec![("__name__", "m"), ("", "v")],
            // '=' sorts before '>', but "\=" after it.
            vec![("__name__", "m"), ("a=", "1"), ("a>", "2")],
            // ingest's own rule: `\\` before a delimiter.
            vec![("__name__", "m"), ("k", "a\\,b")],
        ] {
            let e = refused(vec![series(&labels, &[(1.0, 1)])]);
            assert!(
                matches!(e, PromError::Unreadable { .. } | PromError::Ingest(_)),
                "{labels:?}: {e}"
            );
        }
        // Only samples that would be written make a series matter.
        let batch = convert(&WriteRequest {
            timeseries: vec![series(&[("__name__", "")], &[(f64::NAN, 1)])],
        })
        .unwrap();
        assert_eq!(batch.points, 0);
    }

    #[test]
    fn a_key_too_long_is_refused_with_influxds_message() {
        let long = "v".repeat(MAX_KEY_LENGTH);
        let e = refused(vec![series(
            &[("__name__", "m"), ("k", &long)],
            &[(1.0, 1)],
        )]);
        assert_eq!(
            e.to_string(),
            format!(
                "max key length exceeded: {} > 65535",
                "m,__name__=m,k=".len() + long.len() + 9
            )
        );
    }

    #[test]
    fn bodies_are_snappy_protobuf_within_the_limit() {
        let req = WriteRequest {
            timeseries: vec![series(&[("__name__", "m")], &[(1.0, 1)])],
        };
        let raw = prost::Message::encode_to_vec(&req);
        let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert_eq!(decode(&body, 1 << 20).unwrap(), req);
        assert!(decode(&body, raw.len() - 1).unwrap_err().too_large());
        assert!(matches!(
            decode(b"\x05\xffnot snappy", 1 << 20),
            Err(PromError::Snappy(_))
        ));
        let not_protobuf = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\x05ab")
            .unwrap();
        assert!(matches!(
            decode(&not_protobuf, 1 << 20),
            Err(PromError::Protobuf(_))
        ));
    }
}
