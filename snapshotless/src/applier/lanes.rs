//! Lanes: a large group of writes sent to influxd as several requests at once, so that a node
//! catching up keeps more than one of influxd's cores busy. One request after another, influxd
//! parses, indexes and logs a request on about one core; a replay can go no faster than that,
//! however large its requests.
//!
//! Requests that run at once are taken by influxd in no particular order, and the replicas must
//! still end up holding the same points. A group is split only where no order between its lanes
//! can change what influxd stores:
//! - Points of one series at one time replace each other in order. Every line goes to the lane
//!   of its timestamp, so all the points at one time, whatever their series, stay in one lane,
//!   in log order. The timestamp is the one thing about a point that has only one spelling in
//!   the log (ingest writes it in nanoseconds, digits only); a series key can be spelled with
//!   its tags in any order.
//! - A field's type in a shard is set by the first point that has the field. A group in which a
//!   field of one measurement comes with two types goes whole.
//! - influxd's limits on series (`max-series-per-database`, `max-values-per-tag`) are counted as
//!   series are created, so which new series a full database takes depends on their order. A
//!   group goes in lanes only if every series in it is one this applier saw influxd store since
//!   it resumed ([`KnownSeries`]); the group that brings a new series goes whole. (With the
//!   `tsi1` index influxd keeps series per shard, so a known series written into a new shard
//!   is new there; whether that counts towards its limits there is influxd's to say.)
//!
//! Then every way influxd can refuse a point (a type other than the shard's, a time beyond the
//! retention policy, a line it cannot parse) is the same in any order, and the lanes store
//! exactly what the group would have in one request. When one of them is refused, the applier
//! sends the group's entries again one by one, as it does for a refused group, for exact
//! per-entry answers.
//!
//! Anything the scan below does not expect (it reads lines ingest wrote) sends the group whole.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use ahash::RandomState;
use bytes::{Bytes, BytesMut};

/// Series keys remembered at most; past this the applier starts again from none, and sends the
/// next group that has any of the forgotten ones whole. About 20 MB.
const KNOWN_SERIES_MAX: usize = 1 << 20;

/// The series (database, retention policy and series key as written) this applier saw influxd
/// store since it last resumed: influxd holds them, so writing to them creates nothing.
///
/// Forgotten at every resume, seed and state-changing query (a `DROP SERIES` or `DELETE` may have
/// removed any of them). influxd also drops series whose shards its retention policy expired;
/// that happens at a different moment on every replica whatever the applier does, so it is no
/// concern of the lanes.
#[derive(Default)]
pub(super) struct KnownSeries {
    /// Hashes of the series keys, all made with `hashing`.
    keys: HashSet<u64, RandomState>,
    hashing: RandomState,
}

impl KnownSeries {
    pub(super) fn forget(&mut self) {
        self.keys = HashSet::default();
    }

    /// Called once influxd stored a whole group with these new series.
    pub(super) fn learn(&mut self, new: Vec<u64>) {
        if self.keys.len() + new.len() > KNOWN_SERIES_MAX {
            self.forget();
        }
        self.keys.extend(new);
    }
}

/// How a group of writes goes to influxd.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// In one request; once influxd took all of it, these series are known.
    Whole { new_series: Vec<u64> },
    /// In these requests at once, each holding whole lines of the group, in log order.
    Lanes(Vec<Bytes>),
}

/// How to send the lines of a group (`entries`, each ending its last line) to `db`/`rp` in at
/// most `lanes` requests at once.
pub(super) fn plan<'a>(
    db: &str,
    rp: &str,
    entries: impl IntoIterator<Item = &'a [u8]>,
    lanes: usize,
    known: &KnownSeries,
) -> Plan {
    let entries: Vec<&[u8]> = entries.into_iter().collect();
    let bytes: usize = entries.iter().map(|e| e.len()).sum();
    let lanes = lanes.max(1);
    let mut split = Split::new(db, rp, lanes, &known.hashing);
    for body in &mut split.bodies {
        body.reserve(bytes / lanes + bytes / 8);
    }
    for lines in entries {
        if split.add(lines).is_err() {
            return Plan::Whole {
                new_series: Vec::new(),
            };
        }
    }
    split.finish(known)
}

/// The type a field value has in influxd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Float,
    Integer,
    Unsigned,
    String,
    Boolean,
}

/// A line the scan does not read as ingest writes them.
#[derive(Debug)]
struct Unexpected;

struct Split {
    hashing: RandomState,
    /// The database and retention policy, which every series key is hashed with.
    scope: u64,
    series: HashSet<u64, RandomState>,
    /// The type of each field (hashes of measurement and field key) first seen in the group.
    types: HashMap<(u64, u64), FieldType, RandomState>,
    conflict: bool,
    /// The shape (measurement, field keys and types) of the line being read and of the last
    /// one whose fields were looked up; where the line's field keys are, and their types.
    shape: Vec<u8>,
    last_shape: Vec<u8>,
    fields: Vec<(usize, usize, FieldType)>,
    /// The lane of each timestamp, and what each lane holds.
    lane_of: HashMap<i64, usize, RandomState>,
    bodies: Vec<BytesMut>,
}

impl Split {
    fn new(db: &str, rp: &str, lanes: usize, hashing: &RandomState) -> Split {
        Split {
            hashing: hashing.clone(),
            scope: hashing.hash_one((db, rp)),
            series: HashSet::default(),
            types: HashMap::default(),
            conflict: false,
            shape: Vec::new(),
            last_shape: Vec::new(),
            fields: Vec::new(),
            lane_of: HashMap::default(),
            bodies: vec![BytesMut::new(); lanes],
        }
    }

    fn add(&mut self, b: &[u8]) -> Result<(), Unexpected> {
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\n' {
                i += 1;
                continue;
            }
            let end = self.line(b, i)?;
            i = end;
        }
        Ok(())
    }

    /// Reads the line at `start` (series key, fields and their types, timestamp), puts it in
    /// its lane, and returns where the next one starts.
    fn line(&mut self, b: &[u8], start: usize) -> Result<usize, Unexpected> {
        let (measurement_end, key_end) = scan_key(b, start)?;
        self.series
            .insert(self.hashing.hash_one((self.scope, &b[start..key_end])));

        // The measurement, field keys and types, as written: most lines have those of the
        // line before, already looked at.
        let mut shape = std::mem::take(&mut self.shape);
        shape.clear();
        shape.extend_from_slice(&b[start..measurement_end]);
        self.fields.clear();
        let mut i = skip_blank(b, key_end + 1);
        loop {
            let key_start = i;
            i = scan_name(b, i, b'=')?;
            let (ty, end) = scan_value(b, i + 1)?;
            shape.push(b'=');
            shape.extend_from_slice(&b[key_start..i]);
            shape.push(ty as u8);
            self.fields.push((key_start, i, ty));
            i = end;
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b' ') => break,
                _ => return Err(Unexpected),
            }
        }
        if shape != self.last_shape {
            let measurement = self.name_hash(&b[start..measurement_end]);
            for &(key_start, key_end, ty) in &self.fields {
                let field = (measurement, self.name_hash(&b[key_start..key_end]));
                match self.types.entry(field) {
                    Entry::Vacant(v) => {
                        v.insert(ty);
                    }
                    Entry::Occupied(o) => self.conflict |= *o.get() != ty,
                }
            }
            std::mem::swap(&mut shape, &mut self.last_shape);
        }
        self.shape = shape;
        let ts_start = i + 1;
        let mut end = ts_start + usize::from(b.get(ts_start) == Some(&b'-'));
        let digits = end;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let ts: i64 = std::str::from_utf8(&b[ts_start..end])
            .ok()
            .filter(|_| end > digits)
            .and_then(|t| t.parse().ok())
            .ok_or(Unexpected)?;
        match b.get(end) {
            Some(b'\n') => end += 1,
            None => {}
            Some(_) => return Err(Unexpected),
        }
        let lane = match self.lane_of.entry(ts) {
            Entry::Occupied(o) => *o.get(),
            // A time seen first goes to the lane holding least so far.
            Entry::Vacant(v) => {
                let least = (0..self.bodies.len())
                    .min_by_key(|&l| self.bodies[l].len())
                    .unwrap_or(0);
                *v.insert(least)
            }
        };
        self.bodies[lane].extend_from_slice(&b[start..end]);
        if end == b.len() && b[end - 1] != b'\n' {
            self.bodies[lane].extend_from_slice(b"\n");
        }
        Ok(end)
    }

    /// Hashes a measurement or field key with every escaping backslash dropped. Two
    /// spellings of one name then hash alike (and at worst two names do, which only sends a
    /// group whole that could have gone in lanes).
    fn name_hash(&self, name: &[u8]) -> u64 {
        let plain = if name.contains(&b'\\') {
            let mut plain = Vec::with_capacity(name.len());
            let mut i = 0;
            while i < name.len() {
                if name[i] == b'\\' && i + 1 < name.len() {
                    i += 1;
                }
                plain.push(name[i]);
                i += 1;
            }
            Cow::Owned(plain)
        } else {
            Cow::Borrowed(name)
        };
        self.hashing.hash_one(plain)
    }

    fn finish(self, known: &KnownSeries) -> Plan {
        let new_series: Vec<u64> = self
            .series
            .into_iter()
            .filter(|s| !known.keys.contains(s))
            .collect();
        let filled = self.bodies.iter().filter(|b| !b.is_empty()).count();
        if !new_series.is_empty() || self.conflict || filled < 2 {
            return Plan::Whole { new_series };
        }
        Plan::Lanes(
            self.bodies
                .into_iter()
                .filter(|b| !b.is_empty())
                .map(BytesMut::freeze)
                .collect(),
        )
    }
}

/// Where the measurement and the series key of the line at `start` end: at the first comma,
/// and the first space, that no backslash escapes.
fn scan_key(b: &[u8], start: usize) -> Result<(usize, usize), Unexpected> {
    let mut measurement_end = None;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b',' if measurement_end.is_none() => measurement_end = Some(i),
            b' ' => {
                if i == start {
                    return Err(Unexpected);
                }
                return Ok((measurement_end.unwrap_or(i), i));
            }
            b'\n' => return Err(Unexpected),
            _ => {}
        }
        i += 1;
    }
    Err(Unexpected)
}

/// Where a field key starting at `i` ends: at the first `stop` no backslash escapes.
fn scan_name(b: &[u8], mut i: usize, stop: u8) -> Result<usize, Unexpected> {
    let start = i;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            c if c == stop && i > start => return Ok(i),
            b' ' | b',' | b'\n' | b'=' => return Err(Unexpected),
            _ => {}
        }
        i += 1;
    }
    Err(Unexpected)
}

/// The type of the field value at `i`, and where it ends.
fn scan_value(b: &[u8], mut i: usize) -> Result<(FieldType, usize), Unexpected> {
    match b.get(i) {
        Some(b'"') => {
            i += 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 1,
                    b'"' => return Ok((FieldType::String, i + 1)),
                    _ => {}
                }
                i += 1;
            }
            Err(Unexpected)
        }
        Some(_) => {
            let start = i;
            while i < b.len() && !matches!(b[i], b',' | b' ' | b'\n') {
                i += 1;
            }
            if i == start {
                return Err(Unexpected);
            }
            let ty = match (b[start], b[i - 1]) {
                (b't' | b'T' | b'f' | b'F', _) => FieldType::Boolean,
                (_, b'i') => FieldType::Integer,
                (_, b'u') => FieldType::Unsigned,
                _ => FieldType::Float,
            };
            Ok((ty, i))
        }
        None => Err(Unexpected),
    }
}

/// influxd's `skipWhitespace`, which ingest keeps between the series key and the fields.
fn skip_blank(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | 0) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(entries: &[&str], known: &KnownSeries) -> Plan {
        plan("db", "", entries.iter().map(|e| e.as_bytes()), 2, known)
    }

    /// Knows every series of `entries`, as after influxd stored them whole.
    fn knowing(entries: &[&str]) -> KnownSeries {
        let mut known = KnownSeries::default();
        match plan_of(entries, &known) {
            Plan::Whole { new_series } => known.learn(new_series),
            Plan::Lanes(_) => panic!("unknown series went in lanes"),
        }
        known
    }

    fn lanes(plan: Plan) -> Vec<String> {
        match plan {
            Plan::Lanes(l) => l
                .into_iter()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect(),
            Plan::Whole { new_series } => panic!("whole, {} new series", new_series.len()),
        }
    }

    const TWO_TIMES: &str = "cpu,host=a v=1 10\ncpu,host=b v=2 10\ncpu,host=a v=3 20\n";

    #[test]
    fn a_group_with_a_new_series_goes_whole_and_teaches_it() {
        let first = plan_of(&[TWO_TIMES], &KnownSeries::default());
        assert!(matches!(&first, Plan::Whole { new_series } if new_series.len() == 2));
        let known = knowing(&[TWO_TIMES]);
        assert_eq!(
            lanes(plan_of(&[TWO_TIMES], &known)),
            [
                "cpu,host=a v=1 10\ncpu,host=b v=2 10\n",
                "cpu,host=a v=3 20\n"
            ]
        );
        // Another database's series of the same name are other series.
        let other = plan("other", "", [TWO_TIMES.as_bytes()], 2, &known);
        assert!(matches!(other, Plan::Whole { new_series } if new_series.len() == 2));
    }

    #[test]
    fn every_point_at_one_time_keeps_to_one_lane_in_log_order() {
        let entries = [
            "m,t=1 f=1 100\nm,t=2 f=1 200\n",
            "m,t=1 f=2 100\nm,t=2 f=2 300\n",
            "m,t=1 f=3 200",
        ];
        let known = knowing(&entries);
        let got = lanes(plan_of(&entries, &known));
        // Time 100 to the first lane, 200 and then 300 to the second, which held less.
        assert_eq!(
            got,
            [
                "m,t=1 f=1 100\nm,t=1 f=2 100\n",
                "m,t=2 f=1 200\nm,t=2 f=2 300\nm,t=1 f=3 200\n"
            ]
        );
    }

    #[test]
    fn a_field_with_two_types_in_a_group_sends_it_whole() {
        for (a, b) in [
            ("f=1", "f=1i"),
            ("f=1i", "f=1u"),
            ("f=\"x\"", "f=1"),
            ("f=true", "f=1"),
            ("f=t", "f=\"t\""),
        ] {
            let entries = [format!("m,t=1 {a} 1\n"), format!("m,t=2 {b} 2\n")];
            let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
            let known = knowing(&entries);
            assert_eq!(
                plan_of(&entries, &known),
                Plan::Whole { new_series: vec![] },
                "{a} then {b}"
            );
        }
        // One field key in two measurements is two fields; one name spelled with an escape
        // that needs none is one field.
        let two = ["m1,t=1 f=1 1\nm2,t=1 f=1i 2\n"];
        assert_eq!(lanes(plan_of(&two, &knowing(&two))).len(), 2);
        let one = ["m,t=1 f\\x=1 1\nm,t=2 fx=1i 2\n"];
        assert_eq!(
            plan_of(&one, &knowing(&one)),
            Plan::Whole { new_series: vec![] }
        );
    }

    #[test]
    fn strings_with_delimiters_and_newlines_are_read_through() {
        let entries = ["m,t=a\\ b\\,c s=\"x, y=\\\"z\nw\",f=1.5 1\nm,t=a\\ b\\,c f=2.5 2\n"];
        let known = knowing(&entries);
        assert_eq!(
            lanes(plan_of(&entries, &known)),
            [
                "m,t=a\\ b\\,c s=\"x, y=\\\"z\nw\",f=1.5 1\n",
                "m,t=a\\ b\\,c f=2.5 2\n"
            ]
        );
    }

    #[test]
    fn a_single_time_or_an_unexpected_line_goes_whole() {
        let one_time = ["m,t=1 f=1 5\nm,t=2 f=1 5\n"];
        assert_eq!(
            plan_of(&one_time, &knowing(&one_time)),
            Plan::Whole { new_series: vec![] }
        );
        for odd in [
            "m f=1\n",
            "m f=1 x\n",
            "m f=1 1 2\n",
            " m f=1 1\n",
            "m f 1\n",
            "m f=\"open 1\n",
            "m f= 1\n",
        ] {
            assert_eq!(
                plan_of(&[odd, "m f=1 2\n"], &KnownSeries::default()),
                Plan::Whole { new_series: vec![] },
                "{odd:?}"
            );
        }
    }

    #[test]
    fn forgetting_too_many_series_starts_again_from_none() {
        let mut known = KnownSeries::default();
        known.learn((0..KNOWN_SERIES_MAX as u64).collect());
        known.learn(vec![u64::MAX]);
        assert_eq!(known.keys.len(), 1);
    }
}
