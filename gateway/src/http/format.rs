//! The answer formats of `/query`, picked as influxd 1.6 picks them: an `Accept` header of
//! exactly `application/csv` or `text/csv` gets CSV (sent as `text/csv`), exactly
//! `application/x-msgpack` gets MessagePack, anything else JSON.
//!
//! Reads are answered by influxd itself, in whatever format was asked. A state-changing query
//! is answered with the JSON influxd gave the applier; [`render`] turns that JSON into the
//! format the client asked for, as influxd's own formatters would have written it.

use std::io::Write as _;

use bytes::Bytes;
use hyper::header::ACCEPT;
use hyper::HeaderMap;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Msgpack,
}

impl Format {
    pub fn asked(headers: &HeaderMap) -> Format {
        match headers.get(ACCEPT).and_then(|v| v.to_str().ok()) {
            Some("application/csv" | "text/csv") => Format::Csv,
            Some("application/x-msgpack") => Format::Msgpack,
            _ => Format::Json,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv",
            Format::Msgpack => "application/x-msgpack",
        }
    }
}

/// influxd's JSON answer to a query, in `format`; `None` when it is not such an answer (it is
/// then passed on as it is).
pub fn render(format: Format, json: &[u8]) -> Option<Bytes> {
    let answer: Value = serde_json::from_slice(json).ok()?;
    let answer = answer.as_object()?;
    match format {
        Format::Json => None,
        Format::Csv => Some(Bytes::from(csv(answer))),
        Format::Msgpack => Some(Bytes::from(msgpack(answer))),
    }
}

type Object = serde_json::Map<String, Value>;

/// As influxd's csvFormatter: a header `name,tags,<columns>` per statement with series (and
/// again when the columns change), a row per value row, statements apart by an empty line;
/// statements without series write nothing.
fn csv(answer: &Object) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        csv_row(&mut out, &["error".into()]);
        csv_row(&mut out, &[e.into()]);
        return out;
    }
    let mut statement = -1i64;
    for result in answer
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let series = result.get("series").and_then(Value::as_array);
        let id = result
            .get("statement_id")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let series: &[Value] = series.map_or(&[], Vec::as_slice);
        if id != statement {
            let Some(first) = series.first() else {
                continue;
            };
            if statement >= 0 {
                out.push(b'\n');
            }
            statement = id;
            csv_row(&mut out, &header(first));
        }
        for (i, row) in series.iter().enumerate() {
            if i > 0 && columns(&series[i - 1]) != columns(row) {
                out.push(b'\n');
                csv_row(&mut out, &header(row));
            }
            let name = row.get("name").and_then(Value::as_str).unwrap_or_default();
            let tags = tag_key(row.get("tags").and_then(Value::as_object));
            let names = columns(row);
            for values in row
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mut fields = vec![name.to_owned(), tags.clone()];
                for (i, v) in values.as_array().into_iter().flatten().enumerate() {
                    fields.push(csv_value(names.get(i).copied(), v));
                }
                csv_row(&mut out, &fields);
            }
        }
    }
    out
}

fn columns(series: &Value) -> Vec<&str> {
    series
        .get("columns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn header(series: &Value) -> Vec<String> {
    let mut h = vec!["name".to_owned(), "tags".to_owned()];
    h.extend(columns(series).into_iter().map(str::to_owned));
    h
}

/// Tags as influxd's series key writes them: sorted `k=v` pairs, commas, spaces and equals
/// signs escaped.
fn tag_key(tags: Option<&Object>) -> String {
    let Some(tags) = tags else {
        return String::new();
    };
    let mut pairs: Vec<(&String, &Value)> = tags.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let escape = |s: &str| {
        s.replace(',', "\\,")
            .replace(' ', "\\ ")
            .replace('=', "\\=")
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v.as_str().unwrap_or_default())))
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_value(column: Option<&str>, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        // influxd formats times as nanoseconds since the epoch in CSV.
        Value::String(s) => match column.filter(|c| *c == "time").and_then(|_| nanos(s)) {
            Some(ns) => ns.to_string(),
            None => s.clone(),
        },
        other => other.to_string(),
    }
}

/// An RFC 3339 time as nanoseconds since the epoch.
fn nanos(s: &str) -> Option<i128> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_nanos() as i128)
}

/// One CSV record as Go's encoding/csv writes it: a field is quoted when it holds a comma, a
/// quote, a line break or starts with a space, and its quotes are doubled.
fn csv_row(out: &mut Vec<u8>, fields: &[String]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let quote = f.starts_with(' ') || f.starts_with('\t') || f.contains([',', '"', '\r', '\n']);
        if quote {
            out.push(b'"');
            out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(f.as_bytes());
        }
    }
    out.push(b'\n');
}

/// As influxd's msgpackFormatter: the JSON answer's structure, with `series` always present,
/// times as MessagePack's time extension and integers in the smallest signed encoding.
fn msgpack(answer: &Object) -> Vec<u8> {
    let mut out = Vec::new();
    let w = &mut out;
    rmp::encode::write_map_len(w, 1).expect("writing to a Vec");
    if let Some(e) = answer.get("error").and_then(Value::as_str) {
        str(w, "error");
        str(w, e);
        return out;
    }
    str(w, "results");
    let results = answer.get("results").and_then(Value::as_array);
    let results: &[Value] = results.map_or(&[], Vec::as_slice);
    rmp::encode::write_array_len(w, results.len() as u32).expect("writing to a Vec");
    for result in results {
        if let Some(e) = result.get("error").and_then(Value::as_str) {
            rmp::encode::write_map_len(w, 1).expect("writing to a Vec");
            str(w, "error");
            str(w, e);
            continue;
        }
        let messages = result.get("messages").and_then(Value::as_array);
        let messages: &[Value] = messages.map_or(&[], Vec::as_slice);
        let partial = result.get("partial").and_then(Value::as_bool) == Some(true);
        let size = 2 + u32::from(!messages.is_empty()) + u32::from(partial);
        rmp::encode::write_map_len(w, size).expect("writing to a Vec");
        str(w, "statement_id");
        int(
            w,
            result
                .get("statement_id")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        );
        if !messages.is_empty() {
            str(w, "messages");
            rmp::encode::write_array_len(w, messages.len() as u32).expect("writing to a Vec");
            for m in messages {
                rmp::encode::write_map_len(w, 2).expect("writing to a Vec");
                for key in ["level", "text"] {
                    str(w, key);
                    str(w, m.get(key).and_then(Value::as_str).unwrap_or_default());
                }
            }
        }
        let series = result.get("series").and_then(Value::as_array);
        let series: &[Value] = series.map_or(&[], Vec::as_slice);
        str(w, "series");
        rmp::encode::write_array_len(w, series.len() as u32).expect("writing to a Vec");
        for s in series {
            msgpack_series(w, s);
        }
        if partial {
            str(w, "partial");
            rmp::encode::write_bool(w, true).expect("writing to a Vec");
        }
    }
    out
}

fn msgpack_series(w: &mut Vec<u8>, s: &Value) {
    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
    let tags = s
        .get("tags")
        .and_then(Value::as_object)
        .filter(|t| !t.is_empty());
    let partial = s.get("partial").and_then(Value::as_bool) == Some(true);
    let size = 2 + u32::from(!name.is_empty()) + u32::from(tags.is_some()) + u32::from(partial);
    rmp::encode::write_map_len(w, size).expect("writing to a Vec");
    if !name.is_empty() {
        str(w, "name");
        str(w, name);
    }
    if let Some(tags) = tags {
        str(w, "tags");
        rmp::encode::write_map_len(w, tags.len() as u32).expect("writing to a Vec");
        let mut pairs: Vec<_> = tags.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in pairs {
            str(w, k);
            str(w, v.as_str().unwrap_or_default());
        }
    }
    let names = columns(s);
    str(w, "columns");
    rmp::encode::write_array_len(w, names.len() as u32).expect("writing to a Vec");
    for c in &names {
        str(w, c);
    }
    let rows = s.get("values").and_then(Value::as_array);
    let rows: &[Value] = rows.map_or(&[], Vec::as_slice);
    str(w, "values");
    rmp::encode::write_array_len(w, rows.len() as u32).expect("writing to a Vec");
    for row in rows {
        let values = row.as_array().map_or(&[][..], Vec::as_slice);
        rmp::encode::write_array_len(w, values.len() as u32).expect("writing to a Vec");
        for (i, v) in values.iter().enumerate() {
            msgpack_value(w, names.get(i).copied(), v);
        }
    }
    if partial {
        str(w, "partial");
        rmp::encode::write_bool(w, true).expect("writing to a Vec");
    }
}

fn msgpack_value(w: &mut Vec<u8>, column: Option<&str>, v: &Value) {
    match v {
        Value::Null => rmp::encode::write_nil(w).expect("writing to a Vec"),
        Value::Bool(b) => rmp::encode::write_bool(w, *b).expect("writing to a Vec"),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => int(w, i),
            (_, Some(f)) => rmp::encode::write_f64(w, f).expect("writing to a Vec"),
            _ => str(w, &n.to_string()),
        },
        Value::String(s) => match column.filter(|c| *c == "time").and_then(|_| nanos(s)) {
            // The time extension of the Go library influxd writes with: type 5, seconds and
            // nanoseconds big-endian.
            Some(ns) => {
                let (secs, sub) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
                rmp::encode::write_ext_meta(w, 12, 5).expect("writing to a Vec");
                w.write_all(&(secs as i64).to_be_bytes())
                    .expect("writing to a Vec");
                w.write_all(&(sub as u32).to_be_bytes())
                    .expect("writing to a Vec");
            }
            None => str(w, s),
        },
        other => str(w, &other.to_string()),
    }
}

fn str(w: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(w, s).expect("writing to a Vec");
}

/// As the Go library's WriteInt64: a fixint when it fits, else the smallest signed type.
fn int(w: &mut Vec<u8>, i: i64) {
    let done = if (0..128).contains(&i) {
        rmp::encode::write_pfix(w, i as u8).map_err(|_| ())
    } else if (-32..0).contains(&i) {
        rmp::encode::write_nfix(w, i as i8).map_err(|_| ())
    } else if i8::try_from(i).is_ok() {
        rmp::encode::write_i8(w, i as i8).map_err(|_| ())
    } else if i16::try_from(i).is_ok() {
        rmp::encode::write_i16(w, i as i16).map_err(|_| ())
    } else if i32::try_from(i).is_ok() {
        rmp::encode::write_i32(w, i as i32).map_err(|_| ())
    } else {
        rmp::encode::write_i64(w, i).map_err(|_| ())
    };
    done.expect("writing to a Vec");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_picked_by_an_exact_accept_header() {
        let with = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, accept.parse().unwrap());
            Format::asked(&h)
        };
        assert_eq!(with("application/csv"), Format::Csv);
        assert_eq!(with("text/csv"), Format::Csv);
        assert_eq!(with("application/x-msgpack"), Format::Msgpack);
        assert_eq!(with("application/csv, */*"), Format::Json);
        assert_eq!(Format::asked(&HeaderMap::new()), Format::Json);
    }

    /// The bytes influxd 1.6.7 answered to the same statements, asked for CSV and MessagePack.
    #[test]
    fn renders_as_influxd_does() {
        let none = br#"{"results":[{"statement_id":0},{"statement_id":1}]}"#;
        assert_eq!(render(Format::Csv, none).unwrap(), Bytes::new());
        let into = br#"{"results":[{"statement_id":0,"series":[{"name":"result","columns":["time","written"],"values":[["1970-01-01T00:00:00Z",1]]}]}]}"#;
        assert_eq!(
            render(Format::Csv, into).unwrap(),
            Bytes::from_static(b"name,tags,time,written\nresult,,0,1\n")
        );
        let error =
            br#"{"error":"error parsing query: found a, expected identifier at line 1, char 31"}"#;
        assert_eq!(
            render(Format::Csv, error).unwrap(),
            Bytes::from_static(
                b"error\n\"error parsing query: found a, expected identifier at line 1, char 31\"\n"
            )
        );
        let mut expected = b"\x81\xa7results\x92\x82\xacstatement_id\x00\xa6series\x90".to_vec();
        expected.extend_from_slice(b"\x82\xacstatement_id\x01\xa6series\x90");
        assert_eq!(
            render(Format::Msgpack, none).unwrap(),
            Bytes::from(expected)
        );
        let mut expected = b"\x81\xa7results\x91\x82\xacstatement_id\x00\xa6series\x91".to_vec();
        expected.extend_from_slice(b"\x83\xa4name\xa6result\xa7columns\x92\xa4time\xa7written");
        expected.extend_from_slice(b"\xa6values\x91\x92\xc7\x0c\x05");
        expected.extend_from_slice(&[0; 12]);
        expected.push(1);
        assert_eq!(
            render(Format::Msgpack, into).unwrap(),
            Bytes::from(expected)
        );
        assert_eq!(render(Format::Json, into), None);
        assert_eq!(render(Format::Csv, b"not json"), None);
    }

    #[test]
    fn csv_quotes_and_tags_as_go_writes_them() {
        let tagged = br#"{"results":[{"statement_id":0,"series":[{"name":"m","tags":{"b":"x y","a":"1"},"columns":["k","v"],"values":[["a,b",1.5],[null,true]]}]}]}"#;
        assert_eq!(
            render(Format::Csv, tagged).unwrap(),
            Bytes::from_static(
                b"name,tags,k,v\nm,\"a=1,b=x\\ y\",\"a,b\",1.5\nm,\"a=1,b=x\\ y\",,true\n"
            )
        );
    }

    #[test]
    fn integers_take_the_smallest_signed_encoding() {
        let mut w = Vec::new();
        for i in [5, -3, 200, -100, 70_000, 5_000_000_000] {
            int(&mut w, i);
        }
        assert_eq!(
            w,
            b"\x05\xfd\xd1\x00\xc8\xd0\x9c\xd2\x00\x01\x11\x70\xd3\x00\x00\x00\x01\x2a\x05\xf2\x00"
                .to_vec()
        );
    }
}
