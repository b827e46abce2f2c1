//! influxd 1.x's line grammar: which lines it parses, and where a line's fields end and its
//! timestamp begins.
//!
//! The rules are influxd 1.6's own (`models/points.go`: `scanKey`, `scanFields`,
//! `scanNumber`, `scanBoolean`, `scanTime`), followed byte for byte, down to their quirks
//! (an escape is "the byte before is a backslash"; a float is parsed only when it is long or
//! in scientific notation), so that a line is refused here exactly when influxd would refuse
//! it, with influxd's words. Two kinds of line influxd takes are refused as well, because it
//! reads them as other points than their text says: a name ending in an escaped backslash
//! before a delimiter ([`MISREAD_ESCAPE`]) and a string value with something glued after its
//! closing quote.
//!
//! One pass over the bytes, no allocation: this runs for every point written, and it is most
//! of what the gateway spends on a write before the log.

use std::borrow::Cow;

pub const MISREAD_ESCAPE: &str =
    "a name ends in an escaped backslash before '=', ',' or ' ', which influxd 1.x reads differently";

/// influxd's `MaxKeyLength`: the series key, and the series key with any field key, must fit.
const MAX_KEY_LENGTH: usize = 65_535;
/// What influxd puts between the series key and a field key (`seriesKeySize`).
const FIELD_KEY_SEPARATOR_LEN: usize = 4;
/// Numbers with at least this many characters are parsed to check their range, as influxd
/// does (`maxInt64Digits`, `maxFloat64Digits`); shorter ones cannot be out of range.
const INT_CHECKED_DIGITS: usize = 19;
const FLOAT_CHECKED_DIGITS: usize = 25;

/// Why a line is refused: influxd's message for it.
pub type Refusal = Cow<'static, str>;

/// A line influxd parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Where the field set ends: the series and fields are `line[..fields_end]`.
    pub fields_end: usize,
    /// The timestamp as written, in the request's precision; `None` when there is none.
    pub timestamp: Option<i64>,
}

/// Checks one line. `b` starts at the line's first non-blank byte and has no trailing
/// spaces.
pub fn scan(b: &[u8]) -> Result<Line, Refusal> {
    let mut misread = Misread::default();
    let (key_len, fields_start) = scan_key(b, &mut misread)?;
    if key_len > MAX_KEY_LENGTH {
        return Err(format!("max key length exceeded: {key_len} > {MAX_KEY_LENGTH}").into());
    }
    let fields = scan_fields(b, fields_start, &mut misread)?;
    if let Some(field_key) = fields.longest_key {
        let size = key_len + FIELD_KEY_SEPARATOR_LEN + field_key;
        if size > MAX_KEY_LENGTH {
            return Err(format!("max key length exceeded: {size} > {MAX_KEY_LENGTH}").into());
        }
    }
    let timestamp = scan_time(b, fields.end)?;
    Ok(Line {
        fields_end: fields.end,
        timestamp,
    })
}

/// Tracks backslashes as the line protocol pairs them (each escapes the byte after it), to
/// find `\\` right before `=`, `,` or a space outside a string. Such a name is `...\` to a
/// client, but influxd 1.x takes the second backslash as escaping the delimiter and reads a
/// different point, or, with some string values after it, panics (influxd 1.6 crashes on
/// `m f\\="s \" ,=" 1`). A line that would crash every replica must never enter the log.
#[derive(Default)]
struct Misread {
    /// Bytes before this were an escape pair already looked at.
    paired_until: usize,
}

impl Misread {
    fn check(&mut self, b: &[u8], i: usize) -> Result<(), Refusal> {
        if i < self.paired_until {
            return Ok(());
        }
        self.paired_until = i + 2;
        if b.get(i + 1) == Some(&b'\\') && matches!(b.get(i + 2), Some(b'=' | b',' | b' ')) {
            return Err(MISREAD_ESCAPE.into());
        }
        Ok(())
    }
}

/// The measurement and tags: the key's length and where the fields start (at the space
/// after the key).
fn scan_key(b: &[u8], misread: &mut Misread) -> Result<(usize, usize), Refusal> {
    if b.first().is_none_or(|&c| c == b',') {
        return Err("missing measurement".into());
    }
    let escaped = |i: usize| b[i - 1] == b'\\';
    let mut i = 0;
    // The measurement.
    loop {
        if b[i] == b'\\' {
            misread.check(b, i)?;
        }
        i += 1;
        if i >= b.len() {
            return Err("missing fields".into());
        }
        if escaped(i) {
            continue;
        }
        match b[i] {
            b',' => break,
            b' ' => return Ok((i, i)),
            _ => {}
        }
    }
    // Tags: `,key=value` until an unescaped space. Keys are remembered to find duplicates.
    let mut keys = TagKeys::default();
    loop {
        // The comma before this tag.
        i += 1;
        let key_start = i;
        if i >= b.len() || matches!(b[i], b' ' | b',' | b'=') {
            return Err("missing tag key".into());
        }
        loop {
            if b[i] == b'\\' {
                misread.check(b, i)?;
            }
            i += 1;
            if i >= b.len() || (matches!(b[i], b' ' | b',') && !escaped(i)) {
                return Err("missing tag value".into());
            }
            if b[i] == b'=' && !escaped(i) {
                break;
            }
        }
        keys.push(key_start, i);
        i += 1;
        if i >= b.len() || matches!(b[i], b',' | b' ') {
            return Err("missing tag value".into());
        }
        // influxd never looks at a value's first byte, so `t==x` is the value `=x`.
        loop {
            if b[i] == b'\\' {
                misread.check(b, i)?;
            }
            i += 1;
            if i >= b.len() {
                return Err("missing fields".into());
            }
            if escaped(i) {
                continue;
            }
            match b[i] {
                b'=' => return Err("invalid tag format".into()),
                b',' => break,
                b' ' => {
                    keys.check_duplicates(b)?;
                    return Ok((i, i));
                }
                _ => {}
            }
        }
    }
}

/// The tag keys of a line, as byte ranges: on the stack for the usual handful.
#[derive(Default)]
struct TagKeys {
    inline: [(u32, u32); 16],
    len: usize,
    more: Vec<(u32, u32)>,
}

impl TagKeys {
    fn push(&mut self, start: usize, end: usize) {
        let key = (start as u32, end as u32);
        if self.len < self.inline.len() {
            self.inline[self.len] = key;
        } else {
            if self.more.is_empty() {
                self.more.extend_from_slice(&self.inline);
            }
            self.more.push(key);
        }
        self.len += 1;
    }

    /// influxd refuses a line that names a tag twice (compared as written, escapes and all).
    fn check_duplicates(&mut self, b: &[u8]) -> Result<(), Refusal> {
        let keys: &mut [(u32, u32)] = if self.more.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.more
        };
        let key = |k: &(u32, u32)| &b[k.0 as usize..k.1 as usize];
        // Clients usually send tags sorted: one look at each neighbour settles it.
        if keys.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
            return Ok(());
        }
        keys.sort_unstable_by(|x, y| key(x).cmp(key(y)));
        if keys.windows(2).any(|w| key(&w[0]) == key(&w[1])) {
            return Err("duplicate tags".into());
        }
        Ok(())
    }
}

struct Fields {
    /// Where the field set ends (at the space before the timestamp, or the line's end).
    end: usize,
    /// The length of the longest field key, as written.
    longest_key: Option<usize>,
}

/// `field=value` pairs separated by commas, starting at the space after the key.
fn scan_fields(b: &[u8], from: usize, misread: &mut Misread) -> Result<Fields, Refusal> {
    let mut i = skip_blank(b, from);
    let mut quoted = false;
    let (mut equals, mut commas) = (0usize, 0usize);
    let mut key_start = i;
    let mut longest_key = None::<usize>;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            if !quoted {
                misread.check(b, i)?;
            }
            i += 2;
            continue;
        }
        // A quote only opens a string where a value starts.
        if c == b'"' && equals > commas {
            quoted = !quoted;
            i += 1;
            // influxd glues what follows a closing quote onto the string (`"a"1` is `a"1`).
            if !quoted && !matches!(b.get(i), None | Some(b',' | b' ')) {
                return Err("invalid field format".into());
            }
            continue;
        }
        if c == b'=' && !quoted {
            equals += 1;
            if matches!(b[i - 1], b' ' | b',') && b[i - 2] != b'\\' {
                return Err("missing field key".into());
            }
            longest_key = longest_key.max(Some(i - key_start));
            match b.get(i + 1) {
                None | Some(b',' | b' ') => return Err("missing field value".into()),
                Some(&v) if v.is_ascii_digit() || matches!(v, b'.' | b'-' | b'N' | b'n') => {
                    i = scan_number(b, i + 1)?;
                    continue;
                }
                Some(b'"') => {}
                Some(_) => {
                    i = scan_boolean(b, i + 1)?;
                    continue;
                }
            }
        }
        if !quoted {
            match c {
                b',' => {
                    commas += 1;
                    key_start = i + 1;
                }
                b' ' => break,
                _ => {}
            }
        }
        i += 1;
    }
    if quoted {
        return Err("unbalanced quotes".into());
    }
    if equals == 0 || commas + 1 != equals {
        return Err("invalid field format".into());
    }
    Ok(Fields {
        end: i,
        longest_key,
    })
}

/// A number value starting at `start`; where it ends.
fn scan_number(b: &[u8], start: usize) -> Result<usize, Refusal> {
    const INVALID: &str = "invalid number";
    let mut i = start;
    if b[i] == b'-' {
        i += 1;
        if i == b.len() {
            return Err(INVALID.into());
        }
    }
    let (mut int, mut unsigned, mut decimal, mut scientific) = (false, false, false, false);
    while i < b.len() {
        let c = b[i];
        if matches!(c, b',' | b' ') {
            break;
        }
        if i > start && !(int || unsigned) && matches!(c, b'i' | b'u') {
            if c == b'i' {
                int = true;
            } else {
                unsigned = true;
            }
            i += 1;
            continue;
        }
        if c == b'.' {
            if decimal {
                return Err(INVALID.into());
            }
            decimal = true;
        }
        if i > start && matches!(c, b'e' | b'E') {
            scientific = true;
            i += 1;
            continue;
        }
        if matches!(c, b'+' | b'-') && matches!(b[i - 1], b'e' | b'E') {
            i += 1;
            continue;
        }
        if !(c.is_ascii_digit() || c == b'.') {
            return Err(INVALID.into());
        }
        i += 1;
    }
    // influxd 1.x is built without unsigned integers.
    if unsigned || (int && (decimal || scientific)) {
        return Err(INVALID.into());
    }
    let digits =
        (i - start) - usize::from(int) - usize::from(decimal) - usize::from(b[start] == b'-');
    if digits == 0 {
        return Err(INVALID.into());
    }
    let text = std::str::from_utf8(&b[start..i]).map_err(|_| INVALID)?;
    if int {
        let Some(number) = text.strip_suffix('i') else {
            // `9i10`: the `i` must come last.
            return Err(INVALID.into());
        };
        if number.len() >= INT_CHECKED_DIGITS && number.parse::<i64>().is_err() {
            return Err(format!(
                "unable to parse integer {number}: strconv.ParseInt: parsing {number:?}: value out of range"
            )
            .into());
        }
    } else if scientific || text.len() >= FLOAT_CHECKED_DIGITS {
        // Go's ParseFloat refuses what overflows to infinity; Rust's returns it.
        if !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err("invalid float".into());
        }
    }
    Ok(i)
}

/// A boolean value starting at `start`: t, T, true, True, TRUE, f, F, false, False, FALSE.
fn scan_boolean(b: &[u8], start: usize) -> Result<usize, Refusal> {
    let end = start
        + b[start..]
            .iter()
            .position(|&c| matches!(c, b',' | b' '))
            .unwrap_or(b.len() - start);
    match &b[start..end] {
        b"t" | b"T" | b"true" | b"True" | b"TRUE" | b"f" | b"F" | b"false" | b"False"
        | b"FALSE" => Ok(end),
        _ => Err("invalid boolean".into()),
    }
}

/// The optional timestamp after the fields: an integer, then nothing but spaces.
fn scan_time(b: &[u8], from: usize) -> Result<Option<i64>, Refusal> {
    let start = skip_blank(b, from);
    let mut i = start;
    while i < b.len() && !matches!(b[i], b' ' | b'\n') {
        if !(b[i].is_ascii_digit() || (i == start && b[i] == b'-')) {
            return Err("bad timestamp".into());
        }
        i += 1;
    }
    if i == start {
        return Ok(None);
    }
    // Only ASCII digits and a leading '-' are left.
    let text = std::str::from_utf8(&b[start..i]).unwrap_or_default();
    let ts = text.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        Refusal::from(format!("strconv.ParseInt: parsing {text:?}: {why}"))
    })?;
    if b[i..].iter().any(|&c| c != b' ') {
        return Err("point is invalid".into());
    }
    Ok(Some(ts))
}

/// influxd's `skipWhitespace`: spaces, tabs and NUL bytes.
fn skip_blank(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | 0) {
        i += 1;
    }
    i
}

/// The length of the line at the start of `b`, as influxd's `scanLine` cuts it: at the first
/// newline that is not inside a quoted string value.
pub fn line_len(b: &[u8]) -> usize {
    let (mut quoted, mut fields) = (false, false);
    let (mut equals, mut commas) = (0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 2 < b.len() {
            i += 2;
            continue;
        }
        if c == b' ' {
            fields = true;
        }
        if fields {
            if !quoted && c == b'=' {
                equals += 1;
            } else if !quoted && c == b',' {
                commas += 1;
            } else if c == b'"' && equals > commas {
                quoted = !quoted;
            }
        }
        if c == b'\n' && !quoted {
            break;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(line: &str) -> Option<String> {
        scan(line.as_bytes()).err().map(|r| r.into_owned())
    }

    #[test]
    fn well_formed_lines_pass() {
        for line in [
            "m v=1 1",
            r"m,t=a\=b,u=c\,d f\,g=1,h\=i=2 1",
            r#"m s="a,b=c d",t="x\"y" 1"#,
            r"m\ x,t\ k=v\ v f\ k=1",
            r#"m f="a\\" 1"#,
            "m,t==x  v=1 1",
            "m v=.5,w=5.,x=-1.5e-3,y=1E5,z=9223372036854775807i 1",
            "m v=t,w=T,x=true,y=True,z=TRUE,a=f,b=F,c=false,d=False,e=FALSE",
            "m,b=2,a=1 v=1 -5",
            "m v=1 \t1",
        ] {
            assert_eq!(refusal(line), None, "{line}");
        }
    }

    #[test]
    fn where_the_fields_end_and_the_timestamp() {
        let at = |l: &str| scan(l.as_bytes()).unwrap();
        assert_eq!(at("m v=1 15").timestamp, Some(15));
        assert_eq!(at("m v=1 -15").timestamp, Some(-15));
        assert_eq!(at("m v=1").timestamp, None);
        let line = r#"m,t=1 s="x 12",v=2 99"#;
        assert_eq!(&line[..at(line).fields_end], r#"m,t=1 s="x 12",v=2"#);
        assert_eq!(at(line).timestamp, Some(99));
    }

    #[test]
    fn lines_influxd_refuses_with_its_reasons() {
        for (line, reason) in [
            (",t=1 v=1 1", "missing measurement"),
            ("m", "missing fields"),
            ("m,t=1", "missing fields"),
            ("m,t=a=b v=1 1", "invalid tag format"),
            ("m,t=a,u==b= v=1 1", "invalid tag format"),
            ("m,,t=1 v=1 1", "missing tag key"),
            ("m,=x v=1 1", "missing tag key"),
            ("m,t v=1 1", "missing tag value"),
            ("m,t= v=1 1", "missing tag value"),
            ("m,t=1,t=2 v=1 1", "duplicate tags"),
            ("m,u=1,t=2,u=3 v=1 1", "duplicate tags"),
            ("m a,b=1 1", "invalid field format"),
            ("m a=1,,b=2 1", "invalid field format"),
            ("m a=1,=2 1", "missing field key"),
            ("m a=1,14i 1", "invalid field format"),
            ("m v=1, 1", "invalid field format"),
            ("m =1 1", "missing field key"),
            ("m a= 1", "missing field value"),
            ("m a=", "missing field value"),
            ("m v=1u 1", "invalid number"),
            ("m v=1.5i 1", "invalid number"),
            ("m v=1.2.3 1", "invalid number"),
            ("m v=--1 1", "invalid number"),
            ("m v=NaN 1", "invalid number"),
            ("m v=- 1", "invalid number"),
            ("m v=1i5 1", "invalid number"),
            ("m v=1e999 1", "invalid float"),
            ("m v=1e 1", "invalid float"),
            ("m v=+1 1", "invalid boolean"),
            ("m v=tRUE 1", "invalid boolean"),
            ("m v=yes 1", "invalid boolean"),
            (r#"m v="open 1"#, "unbalanced quotes"),
            (r#"m v="a"1 1"#, "invalid field format"),
            (r#"m v="a""b" 1"#, "invalid field format"),
            ("m v=1 abc", "bad timestamp"),
            ("m v=1 1.5", "bad timestamp"),
            ("m v=1 1 extra", "point is invalid"),
            (
                "m v=1 99999999999999999999",
                r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
            ),
            (
                "m v=1 -",
                r#"strconv.ParseInt: parsing "-": invalid syntax"#,
            ),
            (
                "m v=9223372036854775808i 1",
                r#"unable to parse integer 9223372036854775808: strconv.ParseInt: parsing "9223372036854775808": value out of range"#,
            ),
        ] {
            assert_eq!(refusal(line).as_deref(), Some(reason), "{line}");
        }
    }

    #[test]
    fn escapes_influxd_misreads() {
        for line in [
            r#"m f\\="s \" ,=" 1"#,
            r"m,t\\=x v=1 1",
            r"m\\ x v=1 1",
            r"m,t=x\\ v=1 1",
            r"m a=1,f\\,g=2 1",
        ] {
            assert_eq!(refusal(line).as_deref(), Some(MISREAD_ESCAPE), "{line}");
        }
        // An escaped backslash followed by an escaped delimiter reads the same everywhere;
        // inside a string, backslashes are the string's.
        for line in [r"m\\\ x v=1 1", r#"m v="a\\" 1"#, r#"m v="\\,x" 1"#] {
            assert_eq!(refusal(line), None, "{line}");
        }
    }

    #[test]
    fn keys_longer_than_influxd_takes() {
        let long = "k".repeat(MAX_KEY_LENGTH + 1);
        assert_eq!(
            refusal(&format!("{long} v=1 1")).as_deref(),
            Some("max key length exceeded: 65536 > 65535")
        );
        let near = "k".repeat(MAX_KEY_LENGTH - 8);
        assert_eq!(refusal(&format!("{near} v=1 1")), None);
        assert_eq!(
            refusal(&format!("{near} value=1 1")).as_deref(),
            Some("max key length exceeded: 65536 > 65535")
        );
    }

    #[test]
    fn lines_are_cut_at_newlines_outside_strings() {
        assert_eq!(line_len(b"m v=1 1\nm v=2 2"), 7);
        assert_eq!(line_len(b"m v=\"a\nb\" 1\nm v=2"), 11);
        assert_eq!(line_len(b"m,t=\"x v=1 1\nn"), 12);
        assert_eq!(line_len(b"m v=1 1"), 7);
    }
}
