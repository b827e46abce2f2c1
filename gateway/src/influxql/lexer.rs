//! Splits an InfluxQL query into statements, and each statement into the tokens that
//! classifying it and reading its user statements need, exactly where influxd would.
//!
//! This is not a parser: influxd's parser is the judge of validity. influxd parses the whole
//! query before it executes any statement of it, so a query it rejects changes nothing
//! anywhere, whichever way it was routed; only queries influxd accepts need classifying
//! right. For those, the tokenizer below follows influxd's scanner (influxql `scanner.go`) in
//! everything that decides where a statement ends and which words are keywords:
//!
//! - single-quoted strings and double-quoted identifiers, with backslash escapes, on one line;
//! - `--` line comments and `/* */` block comments;
//! - regex literals `/.../`, which influxd's scanner reads only where its parser expects one
//!   (after `=~`, `!~`, `=`, `,`, `(`, `.`, `SELECT`, `FROM`, `BY` and a source name), with
//!   `\/` as the only escape; a regex may hold `;`, quotes or `--`;
//! - numbers and durations (`10s`, `5into` is a duration, not the keyword `INTO`);
//! - bound parameters (`$name`), which influxd never turns into keywords;
//! - a NUL character, which influxd's scanner mistakes for the end of input mid-token and
//!   then reads past (`IN\0TO` is `INTO` to it), is refused outright.
//!
//! Keywords are case-insensitive; quoted identifiers are never keywords. One scanner quirk is
//! deliberately not followed: influxd reads a bare word directly followed by a quoted
//! identifier (`INTO"x"`) as that identifier alone. Here they stay two tokens, so such an
//! `INTO` still makes a write: influxd rejects that query, so routing it through the log loses
//! nothing, and a scanner without the quirk would take it as a target. Their spans
//! ([`spanned_statements`]) show that they touch, for a reader that must see what influxd sees
//! in a query it accepts (`DROP USER a"b"` drops `b`).

use std::fmt;
use std::ops::Range;

/// A lexical error that leaves statement boundaries unknowable: an unterminated string,
/// quoted identifier, regex or block comment (influxd rejects such a query too), or a NUL
/// character anywhere. Its text is what the HTTP API answers after "error parsing query: ".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at line {line}, char {column}")]
pub struct InfluxqlError {
    pub problem: Problem,
    /// 1-based line, where `\r\n` and a lone `\r` end a line as in influxd's scanner.
    pub line: usize,
    /// 1-based character (not byte) within the line.
    pub column: usize,
}

/// What is wrong where an [`InfluxqlError`] points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    UnterminatedString,
    UnterminatedIdentifier,
    UnterminatedRegex,
    UnterminatedComment,
    Nul,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::UnterminatedString => "unterminated string",
            Problem::UnterminatedIdentifier => "unterminated quoted identifier",
            Problem::UnterminatedRegex => "unterminated regex",
            Problem::UnterminatedComment => "unterminated block comment",
            Problem::Nul => "NUL character not allowed",
        })
    }
}

/// The statements of `q`, each as its tokens; empty statements (`;;`, comments only) are
/// left out. The iterator stops after the first error.
pub(super) fn statements(q: &str) -> Result<Statements<'_, Tok<'_>>, InfluxqlError> {
    split(q, |tok, _| tok)
}

/// A token and the bytes of the query it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spanned<'a> {
    pub(super) tok: Tok<'a>,
    pub(super) span: Range<usize>,
}

/// [`statements`], each token with its span: whether two tokens touch matters where influxd's
/// scanner reads them as one (see the module's note on `INTO"x"`).
pub(super) fn spanned_statements(q: &str) -> Result<Statements<'_, Spanned<'_>>, InfluxqlError> {
    split(q, |tok, span| Spanned { tok, span })
}

fn split<'a, T>(
    q: &'a str,
    make: fn(Tok<'a>, Range<usize>) -> T,
) -> Result<Statements<'a, T>, InfluxqlError> {
    let lexer = Lexer::new(q);
    // influxd's scanner uses NUL as its end-of-input marker, yet reads on past it: a NUL
    // inside a word vanishes (`IN\0TO` is INTO) and one inside a `--` comment ends it. No
    // tokenizer can follow that safely, and no client needs it.
    if let Some(at) = q.find('\0') {
        return Err(lexer.error(Problem::Nul, at));
    }
    Ok(Statements {
        lexer,
        failed: false,
        make,
    })
}

pub(super) struct Statements<'a, T> {
    lexer: Lexer<'a>,
    failed: bool,
    make: fn(Tok<'a>, Range<usize>) -> T,
}

impl<'a, T> Iterator for Statements<'a, T> {
    type Item = Result<Vec<T>, InfluxqlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut current = Vec::new();
        loop {
            match self.lexer.next_token() {
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                Ok(None) => return (!current.is_empty()).then_some(Ok(current)),
                Ok(Some((Tok::Semicolon, _))) if !current.is_empty() => return Some(Ok(current)),
                Ok(Some((Tok::Semicolon, _))) => {}
                Ok(Some((tok, span))) => current.push((self.make)(tok, span)),
            }
        }
    }
}

/// A token, as far as this module's readers care. Whitespace and comments are not tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    /// A bare identifier or keyword, as written.
    Word(&'a str),
    /// A double-quoted identifier, unescaped; never a keyword.
    Quoted(String),
    /// A single-quoted string, unescaped.
    Str(String),
    /// A bound parameter, `$name` or `$"name"`: its name, unescaped.
    Param(String),
    /// An integer, a float or a duration (`10s`, `1h30m`).
    Number,
    Regex,
    Semicolon,
    Comma,
    Dot,
    Colon,
    LParen,
    RParen,
    Eq,
    EqRegex,
    NeqRegex,
    /// Any other operator, or a character influxd's scanner calls illegal.
    Other,
}

impl Tok<'_> {
    pub(super) fn is_keyword(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// The name an identifier position would hold; none for a bound parameter, whose value
    /// comes with the request.
    pub(super) fn ident(&self) -> Option<&str> {
        match self {
            Tok::Word(w) => Some(w),
            Tok::Quoted(s) => Some(s),
            _ => None,
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// The last token (with only whitespace since) is one after which influxd's parser
    /// looks for a regex, so a `/` opens one.
    regex_ok: bool,
    /// Where in a `FROM` list the last token was: a source name may be followed by a regex
    /// segment (`FROM rp /re/`, accepted by newer influxd), where no division can stand.
    from: FromList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FromList {
    /// Not in a `FROM` list.
    Outside,
    /// After `FROM`, a comma or a dot: a name segment or a regex comes next.
    Expect,
    /// After a name segment.
    Name,
    /// After a regex, which ends a source.
    Regex,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            regex_ok: false,
            from: FromList::Outside,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut chars = self.src[self.pos..].chars();
        chars.next();
        chars.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn next_token(&mut self) -> Result<Option<(Tok<'a>, Range<usize>)>, InfluxqlError> {
        self.skip_blanks_and_comments()?;
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let tok = match c {
            '/' if self.regex_ok => {
                self.bump();
                self.regex(start)?;
                Tok::Regex
            }
            '\'' => Tok::Str(self.quoted('\'', start)?),
            '"' => Tok::Quoted(self.quoted('"', start)?),
            '$' => {
                self.bump();
                if self.peek() == Some('"') {
                    Tok::Param(self.quoted('"', start)?)
                } else {
                    Tok::Param(self.bare().to_owned())
                }
            }
            c if c.is_ascii_digit() => {
                self.number();
                Tok::Number
            }
            '.' if self.peek2().is_some_and(|c| c.is_ascii_digit()) => {
                self.number();
                Tok::Number
            }
            c if c.is_ascii_alphabetic() || c == '_' => Tok::Word(self.bare()),
            _ => {
                self.bump();
                self.punctuation(c)
            }
        };
        self.after(&tok);
        Ok(Some((tok, start..self.pos)))
    }

    /// Whitespace and comments, which are not tokens. A comment ends a place where a regex
    /// may start; whitespace does not.
    fn skip_blanks_and_comments(&mut self) -> Result<(), InfluxqlError> {
        loop {
            let start = self.pos;
            match self.peek() {
                // influxd reads '\r' as '\n'; other whitespace is an illegal character.
                Some(' ' | '\t' | '\n' | '\r') => {
                    self.bump();
                }
                Some('-') if self.peek2() == Some('-') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' || c == '\r' {
                            break;
                        }
                    }
                    self.regex_ok = false;
                }
                // Even where a regex may start: a regex starting with `*` never compiles, so
                // in a query influxd accepts, `/*` is always a comment.
                Some('/') if self.peek2() == Some('*') => {
                    self.pos += 2;
                    match self.src[self.pos..].find("*/") {
                        Some(end) => self.pos += end + 2,
                        None => return Err(self.error(Problem::UnterminatedComment, start)),
                    }
                    self.regex_ok = false;
                }
                _ => return Ok(()),
            }
        }
    }

    /// An operator or punctuation character `c`, just consumed, with the character that
    /// completes a two-character operator.
    fn punctuation(&mut self, c: char) -> Tok<'a> {
        match c {
            ';' => Tok::Semicolon,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ':' if self.eat(':') => Tok::Other,
            ':' => Tok::Colon,
            '=' if self.eat('~') => Tok::EqRegex,
            '=' => Tok::Eq,
            '!' if self.eat('~') => Tok::NeqRegex,
            '!' => {
                self.eat('=');
                Tok::Other
            }
            '<' => {
                let _ = self.eat('=') || self.eat('>');
                Tok::Other
            }
            '>' => {
                self.eat('=');
                Tok::Other
            }
            _ => Tok::Other,
        }
    }

    /// Updates the regex context the way influxd's parser would see it after `tok`.
    fn after(&mut self, tok: &Tok<'_>) {
        let name = matches!(tok, Tok::Word(_) | Tok::Quoted(_) | Tok::Param(_));
        self.from = match (self.from, tok) {
            (_, t) if t.is_keyword("FROM") => FromList::Expect,
            (FromList::Expect, _) if name => FromList::Name,
            (FromList::Expect | FromList::Name, Tok::Regex) => FromList::Regex,
            (FromList::Name, Tok::Dot) | (FromList::Name | FromList::Regex, Tok::Comma) => {
                FromList::Expect
            }
            _ => FromList::Outside,
        };
        self.regex_ok = match tok {
            Tok::EqRegex | Tok::NeqRegex | Tok::Eq | Tok::Comma | Tok::LParen | Tok::Dot => true,
            Tok::Word(w) => {
                ["SELECT", "FROM", "BY"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
                    || self.from == FromList::Name
            }
            _ => self.from == FromList::Name,
        };
    }

    /// A bare identifier or keyword: letters, digits and underscores.
    fn bare(&mut self) -> &'a str {
        let from = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        &self.src[from..self.pos]
    }

    /// A string or quoted identifier: on one line, backslash escapes. Returns its value.
    fn quoted(&mut self, quote: char, start: usize) -> Result<String, InfluxqlError> {
        let problem = if quote == '"' {
            Problem::UnterminatedIdentifier
        } else {
            Problem::UnterminatedString
        };
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                Some(c) if c == quote => return Ok(value),
                None | Some('\n' | '\r') => return Err(self.error(problem, start)),
                Some('\\') => match self.bump() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                    // influxd rejects other escapes; keep them so the boundary stays right.
                    Some(c) if c != '\n' && c != '\r' => {
                        value.push('\\');
                        value.push(c);
                    }
                    _ => return Err(self.error(problem, start)),
                },
                Some(c) => value.push(c),
            }
        }
    }

    /// The rest of a regex after its opening `/`. Only `\/` is an escape: a backslash before
    /// anything else stands for itself and the next character is read on its own, so `\\/`
    /// does not end the regex.
    fn regex(&mut self, start: usize) -> Result<(), InfluxqlError> {
        loop {
            match self.bump() {
                Some('/') => return Ok(()),
                Some('\\') => {
                    self.eat('/');
                }
                None | Some('\n' | '\r') => {
                    return Err(self.error(Problem::UnterminatedRegex, start));
                }
                Some(_) => {}
            }
        }
    }

    /// An integer, float or duration; its text does not matter here, only where it ends.
    fn number(&mut self) {
        let digits = |l: &mut Self| {
            while l.peek().is_some_and(|c| c.is_ascii_digit()) {
                l.bump();
            }
        };
        digits(self);
        let decimal = self.eat('.');
        if decimal {
            digits(self);
            return;
        }
        let unit = |c: char| c.is_ascii_alphabetic() || c == 'µ';
        if self.peek().is_some_and(unit) {
            while self.peek().is_some_and(unit) {
                self.bump();
            }
            while self.peek().is_some_and(|c| unit(c) || c.is_ascii_digit()) {
                self.bump();
            }
        }
    }

    /// `problem` at the position of byte `at`: 1-based line and character, where `\r\n` and
    /// a lone `\r` end a line as in influxd's scanner.
    fn error(&self, problem: Problem, at: usize) -> InfluxqlError {
        let (mut line, mut column) = (1, 1);
        let mut chars = self.src[..at].chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\r' && chars.peek() == Some(&'\n') {
                continue;
            }
            if c == '\n' || c == '\r' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        InfluxqlError {
            problem,
            line,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Problem;
    use crate::influxql::tests::{check, check_all, one, Case};
    use crate::influxql::{
        classify,
        StatementKind::{Read, Write},
    };

    #[test]
    fn into_counts_only_as_a_bare_keyword() {
        for q in [
            "SELECT value FROM cpu WHERE host = 'into'",
            "SELECT value FROM cpu WHERE host = 'x INTO y'",
            r#"SELECT "into" FROM cpu"#,
            r#"SELECT value AS "into" FROM "into""#,
            "SELECT value FROM cpu WHERE host =~ /into/",
            "SELECT value FROM /into/",
            "SELECT value FROM cpu -- INTO other\n",
            "SELECT value /* INTO other */ FROM cpu",
            "SELECT value FROM cpu WHERE time > now() - 5into",
            "SELECT value FROM cpu WHERE host = $into",
            "SELECT into_count FROM cpu",
            "SELECT value FROM cpu WHERE host = 'it''s' OR host = 'in\\'to'",
        ] {
            assert_eq!(one(q).kind, Read, "{q:?}");
        }
        for q in [
            "SELECT value INTO other FROM cpu",
            "SELECT value\nINTO\nother\nFROM cpu",
            "SELECT value /* c */ INTO /* c */ other FROM cpu",
            "SELECT value -- c\nINTO other FROM cpu",
            "SELECT value into other from cpu",
            r#"SELECT "a" / "b" INTO x FROM y"#,
            "SELECT a/2 INTO x FROM y",
            // influxd reads INTO"x" as the identifier x and rejects the query; a write is the
            // safe reading either way.
            r#"SELECT value INTO"x" FROM cpu"#,
        ] {
            assert_eq!(one(q).kind, Write, "{q:?}");
        }
    }

    #[test]
    fn quoted_identifiers_are_names_not_keywords() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (r#"SELECT "into" FROM "from""#, Read, "SELECT", &[]),
            (r#"SELECT "INTO", "select" FROM cpu WHERE "into" = 'x'"#, Read, "SELECT", &[]),
            (r#"CREATE DATABASE "my db""#, Write, "CREATE DATABASE", &["my db"]),
            (r#"CREATE DATABASE "a\"b""#, Write, "CREATE DATABASE", &["a\"b"]),
            (r#"DROP DATABASE "back\\slash""#, Write, "DROP DATABASE", &["back\\slash"]),
            (r#"CREATE DATABASE "semi;colon""#, Write, "CREATE DATABASE", &["semi;colon"]),
            (r#"CREATE DATABASE "café""#, Write, "CREATE DATABASE", &["café"]),
            (r#"GRANT READ ON "_gateway" TO u"#, Write, "GRANT", &["_gateway"]),
            // A quoted statement keyword is an identifier: not a statement influxd knows.
            (r#""SELECT" * FROM cpu"#, Write, "", &[]),
            (r#"SHOW "DATABASES""#, Write, "SHOW", &[]),
        ];
        check_all(cases);
    }

    #[test]
    fn semicolons_inside_strings_identifiers_regexes_and_comments_do_not_split() {
        for q in [
            "SELECT * FROM cpu WHERE host = 'a;b'",
            r#"SELECT "a;b" FROM cpu"#,
            "SELECT * FROM /a;b/",
            "SELECT * FROM cpu WHERE host =~ /a;b/",
            "SELECT * FROM cpu -- ; DROP DATABASE x\n",
            "SELECT * FROM cpu /* ; DROP DATABASE x */",
            "SELECT * FROM db.rp./c;pu/",
        ] {
            let c = classify(q).unwrap();
            assert_eq!(c.statements.len(), 1, "{q:?}");
            assert_eq!(c.statements[0].kind, Read, "{q:?}");
        }
    }

    #[test]
    fn leading_whitespace_trailing_semicolons_and_empty_statements() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("\n\n   \t SHOW DATABASES", Read, "SHOW DATABASES", &[]),
            ("\r\nSHOW DATABASES\r\n", Read, "SHOW DATABASES", &[]),
            ("SHOW DATABASES;", Read, "SHOW DATABASES", &[]),
            (";;SHOW DATABASES;;; ;\n", Read, "SHOW DATABASES", &[]),
            ("-- comment\nCREATE DATABASE x", Write, "CREATE DATABASE", &["x"]),
            ("/* c */ CREATE /* c */ DATABASE /* c */ x", Write, "CREATE DATABASE", &["x"]),
            ("CREATE\nDATABASE\tx", Write, "CREATE DATABASE", &["x"]),
        ];
        check_all(cases);
        for q in [
            "",
            "   ",
            ";",
            " ; ;; ",
            "-- only a comment",
            "/* only */",
            "/**/;--\n",
        ] {
            let c = classify(q).unwrap();
            assert!(c.statements.is_empty(), "{q:?}");
            assert!(!c.writes());
        }
    }

    #[test]
    fn regexes_where_influxd_reads_them() {
        for q in [
            "SELECT * FROM /c'pu/",
            "SELECT * FROM /c\"pu/",
            "SELECT * FROM /c--pu/",
            "SELECT * FROM cpu, /m'em/",
            "SELECT /va'l/ FROM cpu",
            "SELECT a, /b'/ FROM cpu",
            "SELECT top(/va'l/, 3) FROM cpu",
            "SELECT mean(v) FROM cpu GROUP BY /h'/",
            "SELECT mean(v) FROM cpu GROUP BY time(1m), /h'/",
            "SELECT * FROM cpu WHERE host =~ /'/",
            "SELECT * FROM cpu WHERE host !~ /'/",
            "SELECT * FROM cpu WHERE host =~\n/'/",
            "SELECT * FROM db../c'/",
            "SELECT * FROM db.rp./c'/",
            "SELECT * FROM rp /c'/",
            "SELECT * FROM cpu WHERE host =~ /a\\/'/",
            "SELECT * FROM cpu WHERE host =~ //",
            "SHOW MEASUREMENTS WITH MEASUREMENT = /'/",
            "SHOW TAG KEYS FROM /'/",
        ] {
            assert_eq!(one(q).kind, Read, "{q:?}");
        }
        // `\\/` is a backslash followed by an escaped slash: the regex goes on.
        assert_eq!(one("SELECT * FROM cpu WHERE a =~ /x\\\\/;'/").kind, Read);
    }

    #[test]
    fn slashes_elsewhere_divide() {
        let c = classify("SELECT a / 2 FROM cpu WHERE time > now() - 1h / 2; CREATE DATABASE x")
            .unwrap();
        assert_eq!(c.statements.len(), 2);
        assert!(c.writes());
        let c = classify("SELECT mean(a) / b FROM cpu; DROP DATABASE y").unwrap();
        assert_eq!(c.statements.len(), 2);
        let c =
            classify(r#"SELECT "a" / "b" FROM cpu WHERE x = 1 / 2;DROP MEASUREMENT m"#).unwrap();
        assert_eq!(c.statements.len(), 2);
        let c = classify("SELECT a.b / c FROM cpu; DROP MEASUREMENT m").unwrap();
        assert_eq!(c.statements.len(), 2);
        // Comments stay comments where a regex could start: `/*` never begins a valid regex.
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("SELECT a FROM b WHERE c = /* ; */ 1", Read, "SELECT", &[]),
            ("SELECT /* c */ a FROM b", Read, "SELECT", &[]),
        ];
        check_all(cases);
    }

    #[test]
    fn lexical_errors() {
        for (q, at) in [
            ("SELECT * FROM cpu WHERE a = 'x", "line 1, char 29"),
            ("SELECT * FROM cpu WHERE a = 'x\n'", "line 1, char 29"),
            ("SELECT \"x FROM cpu", "line 1, char 8"),
            ("SELECT * FROM cpu\nWHERE a =~ /x", "line 2, char 12"),
            ("SELECT * FROM /a\n/", "line 1, char 15"),
            ("SELECT * FROM cpu /* no end", "line 1, char 19"),
            ("SELECT * FROM cpu WHERE a = 'x\\", "line 1, char 29"),
            ("SELECT $\"x FROM cpu", "line 1, char 8"),
            ("SELECT 'é\\é", "line 1, char 8"),
            ("SHOW\r\nDATABASES;\r'x", "line 3, char 1"),
            ("SHOW\rDATABASES;\n 'x", "line 3, char 2"),
        ] {
            let e = classify(q).expect_err(q).to_string();
            assert!(e.ends_with(at), "{q:?}: {e}");
        }
        // influxd would run these as `INTO`, `nul4` and a `DROP DATABASE`.
        for q in [
            "SELECT value IN\0TO copy FROM cpu",
            "CREATE DATABASE nu\0l4",
            "SHOW DATABASES -- \0; DROP DATABASE x",
            "SHOW DATABASES\0",
            "SELECT '\0' FROM cpu",
        ] {
            let e = classify(q).expect_err(q);
            assert_eq!(e.problem, Problem::Nul, "{q:?}: {e}");
            assert!(e.to_string().starts_with("NUL character"), "{q:?}: {e}");
        }
        // influxd rejects other escapes; the boundaries are still known, so it judges.
        check(r"SELECT * FROM cpu WHERE a = 'x\qy'", Read, "SELECT", &[]);
    }

    /// The HTTP API answers these after "error parsing query: ", as influxd words them.
    #[test]
    fn error_texts() {
        for (q, text) in [
            ("SELECT 'x", "unterminated string at line 1, char 8"),
            (
                "SELECT \"x",
                "unterminated quoted identifier at line 1, char 8",
            ),
            ("SELECT * FROM /x", "unterminated regex at line 1, char 15"),
            (
                "SELECT /* x",
                "unterminated block comment at line 1, char 8",
            ),
            ("SELECT\n\0", "NUL character not allowed at line 2, char 1"),
        ] {
            assert_eq!(classify(q).unwrap_err().to_string(), text, "{q:?}");
        }
    }

    #[test]
    fn numbers_and_durations() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("SELECT * FROM cpu WHERE time > now() - 10µs", Read, "SELECT", &[]),
            ("SELECT * FROM cpu WHERE v > .5 AND v < 1.5e AND time > 1h30m", Read, "SELECT", &[]),
            ("DROP SHARD 12", Write, "DROP SHARD", &[]),
            // `1.` followed by a word: the word is a token of its own, as in influxd.
            ("SELECT 1.into FROM cpu", Write, "SELECT INTO", &[]),
        ];
        check_all(cases);
    }
}
