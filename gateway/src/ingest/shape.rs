//! influxd 1.x's rules for the shape of a line that the parser does not enforce.
//!
//! The parser (InfluxData's crate, written for later versions) accepts a few lines that
//! influxd 1.x reads differently or refuses: an unescaped `=` in a tag value, an unescaped
//! `,` in a field key, empty tags or fields, and `\\` before a delimiter. Accepting them would
//! put lines in the log that influxd rejects at apply time, or worse, reads as other points
//! than the parser did. These checks only look at where the separators are; the parser still
//! does the parsing.

pub const MISREAD_ESCAPE: &str =
    "a name ends in an escaped backslash before '=', ',' or ' ', which influxd 1.x reads differently";

/// Why influxd 1.x would refuse or misread the line, if it would.
pub fn check(line: &str) -> Option<&'static str> {
    if misread_escape(line) {
        return Some(MISREAD_ESCAPE);
    }
    let (series, fields) = split_unescaped(line, b' ', false)
        .split_first()
        .map(|(s, rest)| (*s, rest.first().copied().unwrap_or("")))?;
    // Tags: every one is key=value with exactly one unescaped '='.
    for tag in split_unescaped(series, b',', false).iter().skip(1) {
        let Some(eq) = first_unescaped(tag.as_bytes(), b'=') else {
            return Some("missing tag value");
        };
        let (key, value) = (&tag[..eq], &tag[eq + 1..]);
        if key.is_empty() {
            return Some("missing tag key");
        }
        if value.is_empty() {
            return Some("missing tag value");
        }
        // influxd never looks at a value's first character, so `t==x` is the value `=x`;
        // an '=' anywhere else is refused.
        let v = value.as_bytes();
        if first_unescaped(v, b'=')
            .is_some_and(|at| at > 0 || first_unescaped(&v[1..], b'=').is_some())
        {
            return Some("invalid tag format");
        }
    }
    // Fields: every one is key=value, the key non-empty and free of unescaped '=' or ','.
    // influxd skips any number of spaces between the series and the fields.
    let fields = split_unescaped(fields.trim_start_matches(' '), b' ', true)[0];
    if fields.is_empty() {
        return Some("missing fields");
    }
    for field in split_unescaped(fields, b',', true) {
        let Some(eq) = first_unescaped(field.as_bytes(), b'=') else {
            return Some("invalid field format");
        };
        if eq == 0 {
            return Some("missing field key");
        }
        if eq + 1 == field.len() {
            return Some("missing field value");
        }
    }
    None
}

/// Splits at `sep` when it is not escaped by a backslash (and, with `strings`, not inside a
/// double-quoted field value, which starts right after an `=`). With `sep` a space, only the
/// first split matters: the rest is the field set and timestamp.
fn split_unescaped(s: &str, sep: u8, strings: bool) -> Vec<&str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'"' if strings && (in_string || (i > 0 && b[i - 1] == b'=')) => in_string = !in_string,
            c if c == sep && !in_string => {
                parts.push(&s[start..i]);
                start = i + 1;
                if sep == b' ' {
                    // Series, then everything after it.
                    parts.push(&s[start..]);
                    return parts;
                }
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

fn first_unescaped(b: &[u8], c: u8) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            x if x == c => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether a name holds `\\` right before `=`, `,` or a space. The parser takes `\\` as one
/// escaped backslash, but influxd 1.x's scanner takes the second backslash as escaping the
/// delimiter and reads a different point, or, with some string values after it, panics
/// (influxd 1.6 crashes on `m f\\="s \" ,=" 1`). A line that would crash every replica must
/// never enter the log.
fn misread_escape(line: &str) -> bool {
    let b = line.as_bytes();
    let mut in_string = false;
    let mut in_fields = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_string => i += 1,
            b'\\' => {
                if b.get(i + 1) == Some(&b'\\') && matches!(b.get(i + 2), Some(b'=' | b',' | b' '))
                {
                    return true;
                }
                i += 1;
            }
            b'"' if in_string || (in_fields && i > 0 && b[i - 1] == b'=') => in_string = !in_string,
            b' ' if !in_string => in_fields = true,
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_lines_pass() {
        for line in [
            "m v=1 1",
            r"m,t=a\=b,u=c\,d f\,g=1,h\=i=2 1",
            r#"m s="a,b=c d",t="x\"y" 1"#,
            r"m\ x,t\ k=v\ v f\ k=1",
            r#"m f="a\\" 1"#,
            "m,t==x  v=1 1",
        ] {
            assert_eq!(check(line), None, "{line}");
        }
    }

    #[test]
    fn shapes_influxd_refuses() {
        for (line, reason) in [
            ("m,t=a=b v=1 1", "invalid tag format"),
            ("m,t=a,u==b= v=1 1", "invalid tag format"),
            ("m,,t=1 v=1 1", "missing tag value"),
            ("m,=x v=1 1", "missing tag key"),
            ("m,t v=1 1", "missing tag value"),
            ("m a,b=1 1", "invalid field format"),
            ("m a=1,,b=2 1", "invalid field format"),
            ("m a=1,14i 1", "invalid field format"),
            ("m =1 1", "missing field key"),
            ("m a= 1", "missing field value"),
            (r#"m f\\="s \" ,=" 1"#, MISREAD_ESCAPE),
            (r"m,t\\=x v=1 1", MISREAD_ESCAPE),
            (r"m\\ x v=1 1", MISREAD_ESCAPE),
        ] {
            assert_eq!(check(line), Some(reason), "{line}");
        }
    }
}
