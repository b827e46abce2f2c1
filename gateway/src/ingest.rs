//! Ingest: line protocol in, a deterministic batch out. (Provisional minimal version.)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    pub fn from_v1(param: Option<&str>) -> Result<Precision, String> {
        Ok(match param.unwrap_or("") {
            "" | "n" | "ns" => Precision::Nanoseconds,
            "u" | "us" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            other => return Err(format!("invalid precision {other:?}")),
        })
    }

    pub fn from_v2(param: Option<&str>) -> Result<Precision, String> {
        Ok(match param.unwrap_or("") {
            "" | "ns" => Precision::Nanoseconds,
            "us" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            other => return Err(format!("invalid precision {other:?}")),
        })
    }

    fn nanos(self) -> i64 {
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

pub struct Batch {
    pub lines: Vec<u8>,
    pub points: usize,
    pub parse_error: Option<String>,
}

pub fn ingest(body: &[u8], precision: Precision, now_ns: i64) -> Batch {
    let text = String::from_utf8_lossy(body);
    let mut lines = Vec::new();
    let mut points = 0;
    let mut errors = Vec::new();
    for raw in influxdb_line_protocol::split_lines(&text) {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        match influxdb_line_protocol::parse_lines(raw).next() {
            Some(Ok(mut line)) => {
                let ts = match line.timestamp {
                    Some(t) => t.checked_mul(precision.nanos()),
                    None => Some(now_ns - now_ns % precision.nanos()),
                };
                let Some(ts) = ts else {
                    errors.push(format!("unable to parse '{raw}': time outside range"));
                    continue;
                };
                line.timestamp = Some(ts);
                lines.extend_from_slice(line.to_string().as_bytes());
                lines.push(b'\n');
                points += 1;
            }
            Some(Err(e)) => errors.push(format!("unable to parse '{raw}': {e}")),
            None => {}
        }
    }
    Batch {
        lines,
        points,
        parse_error: (!errors.is_empty()).then(|| errors.join("\n")),
    }
}
