//! The workload's data model in InfluxDB terms: the point each element is written as, and
//! parsing influxd's JSON query answers back into points.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DATABASE: &str = "jepsen";
/// The gateway's bookkeeping database (its apply markers): not the workload's.
pub const RESERVED_DATABASE: &str = "_gateway";
pub const MEASUREMENT: &str = "set";
/// Keyed writes (`Idempotency-Key`, sent without timestamps, retried with the same key).
pub const KEYED_MEASUREMENT: &str = "keyed";
/// Writes sent without timestamps and retried without a key (`--unkeyed-retries`).
pub const UNKEYED_MEASUREMENT: &str = "unkeyed";

/// One point as influxd holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub measurement: String,
    pub tags: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time: i64,
    pub fields: BTreeMap<String, Value>,
}

impl Point {
    /// The series key, as influxd forms it: measurement and sorted tags.
    pub fn series(&self) -> String {
        let mut s = self.measurement.clone();
        for (k, v) in &self.tags {
            s.push(',');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }

    pub fn element(&self) -> Option<u64> {
        self.fields.get("element").and_then(Value::as_u64)
    }

    /// The point a write must produce for `element`: every field is derived from values no
    /// other write carries, so any replica holding something else is plainly wrong.
    pub fn expected(client: u32, op: u64, element: u64, time: i64) -> Point {
        let mut fields = BTreeMap::new();
        fields.insert("element".into(), Value::from(element));
        fields.insert("op".into(), Value::from(op));
        fields.insert("s".into(), Value::from(format!("e{element}")));
        fields.insert("v".into(), Value::from(element as f64 + 0.5));
        Point {
            measurement: MEASUREMENT.into(),
            tags: BTreeMap::from([("client".to_owned(), client.to_string())]),
            time,
            fields,
        }
    }

    /// Line protocol without the timestamp: the receiving node stamps it.
    pub fn line_untimed(&self) -> String {
        let line = self.line();
        match line.rfind(' ') {
            Some(i) => line[..i].to_owned(),
            None => line,
        }
    }

    pub fn line(&self) -> String {
        let mut line = self.series();
        let mut first = true;
        for (k, v) in &self.fields {
            line.push(if first { ' ' } else { ',' });
            first = false;
            line.push_str(k);
            line.push('=');
            match v {
                Value::String(s) => {
                    line.push('"');
                    line.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
                    line.push('"');
                }
                Value::Number(n) if n.is_f64() => {
                    line.push_str(&format!("{:?}", n.as_f64().unwrap()))
                }
                Value::Number(n) => {
                    line.push_str(&n.to_string());
                    line.push('i');
                }
                Value::Bool(b) => line.push_str(if *b { "true" } else { "false" }),
                Value::Null | Value::Array(_) | Value::Object(_) => {}
            }
        }
        line.push(' ');
        line.push_str(&self.time.to_string());
        line
    }
}

/// Parses an answer of influxd's /query (epoch=ns), plain or chunked (one JSON document per
/// line), into points. Null columns are absent fields, as influxd fills them for `SELECT *`
/// across series with different fields.
pub fn parse_points(body: &str) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for doc in body.lines().filter(|l| !l.trim().is_empty()) {
        for_each_series(doc, |series| parse_series(series, &mut points))?;
    }
    Ok(points)
}

/// Calls `f` with every series of one JSON answer of /query; an error anywhere in the answer
/// (the whole request's or one statement's) is an error, never an empty result.
fn for_each_series(
    doc: &str,
    mut f: impl FnMut(&Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let v: Value = serde_json::from_str(doc.trim()).context("influxd's answer is not JSON")?;
    no_error(&v)?;
    for result in array(&v, "results") {
        no_error(result)?;
        for series in array(result, "series") {
            f(series)?;
        }
    }
    Ok(())
}

/// The `error` member of an answer or of one statement's result, as an error.
fn no_error(v: &Value) -> anyhow::Result<()> {
    match v.get("error").and_then(Value::as_str) {
        Some(e) => bail!("influxd: {e}"),
        None => Ok(()),
    }
}

/// The items of the array member `key`; none if there is no such array.
fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn parse_series(series: &Value, points: &mut Vec<Point>) -> anyhow::Result<()> {
    let name = series
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tags: BTreeMap<String, String> = series
        .get("tags")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                // GROUP BY * lists every tag key of the measurement; empty means absent.
                .filter_map(|(k, v)| {
                    v.as_str()
                        .filter(|s| !s.is_empty())
                        .map(|s| (k.clone(), s.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let columns: Vec<&str> = series
        .get("columns")
        .and_then(Value::as_array)
        .context("series without columns")?
        .iter()
        .map(|c| c.as_str().unwrap_or_default())
        .collect();
    let time_col = columns
        .iter()
        .position(|c| *c == "time")
        .context("series without a time column")?;
    for row in array(series, "values") {
        let row = row.as_array().context("a row is not an array")?;
        let time = row
            .get(time_col)
            .and_then(Value::as_i64)
            .context("a row without an integer time (epoch=ns missing?)")?;
        let fields = columns
            .iter()
            .zip(row)
            .enumerate()
            .filter(|(i, (_, v))| *i != time_col && !v.is_null())
            .map(|(_, (c, v))| ((*c).to_owned(), v.clone()))
            .collect();
        points.push(Point {
            measurement: name.to_owned(),
            tags: tags.clone(),
            time,
            fields,
        });
    }
    Ok(())
}

/// One series of a `/query` answer: its name, columns and rows, as influxd gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The value of `column` in `row`, if there is such a column.
    pub fn get<'a>(&self, row: &'a [Value], column: &str) -> Option<&'a Value> {
        let i = self.columns.iter().position(|c| c == column)?;
        row.get(i)
    }
}

/// Every series of an answer (plain or chunked) as a table: for `SHOW` statements, whose
/// rows are not points.
pub fn tables(body: &str) -> anyhow::Result<Vec<Table>> {
    let mut out = Vec::new();
    for doc in body.lines().filter(|l| !l.trim().is_empty()) {
        for_each_series(doc, |series| {
            out.push(Table {
                name: series
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                columns: array(series, "columns")
                    .map(|c| c.as_str().unwrap_or_default().to_owned())
                    .collect(),
                rows: array(series, "values")
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect(),
            });
            Ok(())
        })?;
    }
    Ok(out)
}

/// Database names from a `SHOW DATABASES` answer.
pub fn parse_databases(body: &str) -> anyhow::Result<Vec<String>> {
    let mut dbs: Vec<String> = parse_points_untimed(body)?;
    dbs.sort();
    Ok(dbs)
}

fn parse_points_untimed(body: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for_each_series(body, |series| {
        for row in array(series, "values") {
            if let Some(s) = row.get(0).and_then(Value::as_str) {
                out.push(s.to_owned());
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_point_as_line_protocol() {
        let p = Point::expected(3, 9, 17, 1_700_000_000_000_000_017);
        assert_eq!(
            p.line(),
            "set,client=3 element=17i,op=9i,s=\"e17\",v=17.5 1700000000000000017"
        );
        assert_eq!(p.series(), "set,client=3");
        assert_eq!(p.element(), Some(17));
        assert_eq!(
            p.line_untimed(),
            "set,client=3 element=17i,op=9i,s=\"e17\",v=17.5"
        );
    }

    #[test]
    fn parses_chunked_grouped_answers() {
        let body = r#"{"results":[{"statement_id":0,"series":[{"name":"set","tags":{"client":"3"},"columns":["time","element","op","s","v"],"values":[[5,17,9,"e17",17.5],[6,18,9,"e18",null]],"partial":true}],"partial":true}]}
{"results":[{"statement_id":0,"series":[{"name":"set","tags":{"client":"4"},"columns":["time","element","op","s","v"],"values":[[7,19,10,"e19",19.5]]}]}]}
"#;
        let pts = parse_points(body).unwrap();
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[0], Point::expected(3, 9, 17, 5));
        assert!(!pts[1].fields.contains_key("v"));
        assert_eq!(pts[2].tags["client"], "4");
    }

    #[test]
    fn errors_are_reported() {
        let body = r#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#;
        assert!(parse_points(body)
            .unwrap_err()
            .to_string()
            .contains("not found"));
    }

    #[test]
    fn databases() {
        let body = r#"{"results":[{"statement_id":0,"series":[{"name":"databases","columns":["name"],"values":[["jepsen"],["_gateway"]]}]}]}"#;
        assert_eq!(parse_databases(body).unwrap(), vec!["_gateway", "jepsen"]);
    }
}
