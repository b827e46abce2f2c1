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

/// Why influxd 1.x would refuse or misread the line, if it would. One pass over the bytes,
/// no allocation: this runs for every point written.
pub fn check(line: &str) -> Option<&'static str> {
    let b = line.as_bytes();
    let mut i = 0;

    // The series: the measurement, then `,key=value` tags, up to the first unescaped space.
    let mut in_tag = false;
    let mut tag_eq: Option<usize> = None; // where this tag's '=' is
    let mut tag_start = 0;
    loop {
        let c = b.get(i).copied();
        if c == Some(b'\\') {
            if misread_at(b, i) {
                return Some(MISREAD_ESCAPE);
            }
            i += 2;
            continue;
        }
        if matches!(c, None | Some(b',' | b' ')) {
            if in_tag {
                match tag_eq {
                    None => return Some("missing tag value"),
                    Some(eq) if eq == tag_start => return Some("missing tag key"),
                    Some(eq) if eq + 1 == i => return Some("missing tag value"),
                    Some(_) => {}
                }
            }
            match c {
                Some(b',') => {
                    in_tag = true;
                    tag_eq = None;
                    tag_start = i + 1;
                    i += 1;
                    continue;
                }
                _ => break,
            }
        }
        if c == Some(b'=') && in_tag {
            match tag_eq {
                None => tag_eq = Some(i),
                // influxd never looks at a value's first character, so `t==x` is the value
                // `=x`; an '=' anywhere else is refused.
                Some(eq) if i == eq + 1 => {}
                Some(_) => return Some("invalid tag format"),
            }
        }
        i += 1;
    }

    // The fields: `key=value` separated by commas, up to the first space outside a string.
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if i >= b.len() {
        return Some("missing fields");
    }
    let mut field_start = i;
    let mut field_eq: Option<usize> = None;
    let mut in_string = false;
    loop {
        let c = b.get(i).copied();
        match c {
            // An unterminated string: the parser says what is wrong with it.
            None if in_string => return None,
            Some(b'\\') if in_string => i += 1,
            Some(b'\\') => {
                if misread_at(b, i) {
                    return Some(MISREAD_ESCAPE);
                }
                i += 1;
            }
            Some(b'"') if in_string || field_eq.is_some_and(|eq| eq + 1 == i) => {
                in_string = !in_string
            }
            _ if in_string => {}
            Some(b'=') if field_eq.is_none() => field_eq = Some(i),
            None | Some(b',' | b' ') => {
                match field_eq {
                    None => return Some("invalid field format"),
                    Some(eq) if eq == field_start => return Some("missing field key"),
                    Some(eq) if eq + 1 == i => return Some("missing field value"),
                    Some(_) => {}
                }
                if c != Some(b',') {
                    return None;
                }
                field_start = i + 1;
                field_eq = None;
            }
            _ => {}
        }
        i += 1;
    }
}

/// `\\` right before `=`, `,` or a space, outside a string. The parser takes `\\` as one
/// escaped backslash, but influxd 1.x's scanner takes the second backslash as escaping the
/// delimiter and reads a different point, or, with some string values after it, panics
/// (influxd 1.6 crashes on `m f\\="s \" ,=" 1`). A line that would crash every replica must
/// never enter the log.
fn misread_at(b: &[u8], i: usize) -> bool {
    b.get(i + 1) == Some(&b'\\') && matches!(b.get(i + 2), Some(b'=' | b',' | b' '))
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
    fn unterminated_strings_are_left_to_the_parser() {
        assert_eq!(check(r#"m v="open 1"#), None);
        assert_eq!(check(r#"m v="open\"#), None);
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
