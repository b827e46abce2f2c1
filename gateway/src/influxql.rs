//! Classifies an InfluxQL query (the `q` of `/query`) statement by statement: does it only
//! read, does it change state, or does it act on the node asked only.
//!
//! The split decides where a query runs. A state-changing statement must go through the Raft
//! log so that every replica applies it at the same point between the writes; a read can be
//! answered by the local influxd. The two mistakes are not symmetric: calling a write a read
//! runs it on one replica only and the replicas diverge for good, while calling a read a write
//! only sends it through the log (slower, same answer). So everything this module does not
//! positively recognise as a read is a write.
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
//! nothing, and a scanner without the quirk would take it as a target.

use std::collections::HashSet;

/// Where a statement must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// Only reads state: the local influxd answers it.
    Read,
    /// Changes state, or is not recognised: it goes through the log and every replica
    /// applies it (an unrecognised statement is rejected by influxd identically everywhere).
    Write,
    /// Acts on the influxd of the node asked only: `KILL QUERY` names a query id of that
    /// process, which means another query, or nothing, on the other replicas.
    Local,
}

/// One statement of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: StatementKind,
    /// The statement's leading keywords, upper case (`CREATE DATABASE`, `SHOW TAG VALUES`,
    /// `SELECT INTO`, `KILL QUERY`); for an unrecognised statement its first word, or empty.
    pub name: String,
    /// Databases the statement names explicitly, unescaped, in order of first mention: the
    /// database created or dropped, every `ON db` (except `KILL QUERY ... ON host`), and the
    /// first segment of three-part names after `INTO` and in `FROM` lists
    /// (`"db"."rp"."m"`, `db..m`, `db.rp./re/`, `db..:MEASUREMENT`), subqueries and the
    /// `SELECT` of a continuous query included. Statements that act on the request's `db`
    /// parameter (`DROP MEASUREMENT`, `DELETE`, `DROP SERIES`, a `SELECT ... INTO m`) name
    /// none: the caller must consider that parameter too.
    pub databases: Vec<String>,
    /// The statement holds a bound parameter (`$name`). influxd substitutes those from the
    /// request's `params`, identifiers included (`DROP DATABASE $db`), so `databases` may
    /// then be incomplete.
    pub bound_params: bool,
}

/// A query's statements, in order; empty statements (`;;`, comments only) are left out.
#[derive(Debug)]
pub struct Classified {
    pub statements: Vec<Statement>,
}

impl Classified {
    /// Whether any statement must go through the log. A query with one does so whole: its
    /// statements then run in order at one point of the log on every replica.
    pub fn writes(&self) -> bool {
        self.has(StatementKind::Write)
    }

    /// Whether any statement acts on the asked node only. Replicated together with a write,
    /// such a statement would run on every replica, where its meaning differs.
    pub fn local(&self) -> bool {
        self.has(StatementKind::Local)
    }

    fn has(&self, kind: StatementKind) -> bool {
        self.statements.iter().any(|s| s.kind == kind)
    }
}

/// Splits `q` into statements and classifies each.
///
/// Errs only on a lexical error that leaves statement boundaries unknowable: an unterminated
/// string, quoted identifier, regex or block comment (influxd rejects such a query too), or a
/// NUL character anywhere (which influxd reads in ways no tokenizer can follow).
/// Anything else, invalid or unknown, is classified, and the default is
/// [`StatementKind::Write`].
pub fn classify(q: &str) -> Result<Classified, String> {
    let mut lexer = Lexer::new(q);
    // influxd's scanner uses NUL as its end-of-input marker, yet reads on past it: a NUL
    // inside a word vanishes (`IN\0TO` is INTO) and one inside a `--` comment ends it. No
    // tokenizer can follow that safely, and no client needs it.
    if let Some(at) = q.find('\0') {
        return Err(lexer.error("NUL character not allowed", at));
    }
    let mut statements = Vec::new();
    let mut current = Vec::new();
    while let Some(tok) = lexer.next_token()? {
        if tok == Tok::Semicolon {
            if !current.is_empty() {
                statements.push(classify_statement(&current));
                current.clear();
            }
        } else {
            current.push(tok);
        }
    }
    if !current.is_empty() {
        statements.push(classify_statement(&current));
    }
    Ok(Classified { statements })
}

/// The statement forms influxd 1.x knows, by leading keywords, with where they run.
/// `SELECT` and `EXPLAIN` are not here: whether they write depends on an `INTO`.
const FORMS: &[(&[&str], StatementKind)] = {
    use StatementKind::{Local, Read, Write};
    &[
        (&["SHOW", "CONTINUOUS", "QUERIES"], Read),
        (&["SHOW", "DATABASES"], Read),
        (&["SHOW", "DIAGNOSTICS"], Read),
        (&["SHOW", "FIELD", "KEY", "CARDINALITY"], Read),
        (&["SHOW", "FIELD", "KEY", "EXACT", "CARDINALITY"], Read),
        (&["SHOW", "FIELD", "KEYS"], Read),
        (&["SHOW", "GRANTS", "FOR"], Read),
        (&["SHOW", "MEASUREMENT", "CARDINALITY"], Read),
        (&["SHOW", "MEASUREMENT", "EXACT", "CARDINALITY"], Read),
        (&["SHOW", "MEASUREMENTS"], Read),
        (&["SHOW", "QUERIES"], Read),
        (&["SHOW", "RETENTION", "POLICIES"], Read),
        (&["SHOW", "SERIES"], Read),
        (&["SHOW", "SERIES", "CARDINALITY"], Read),
        (&["SHOW", "SERIES", "EXACT", "CARDINALITY"], Read),
        (&["SHOW", "SHARD", "GROUPS"], Read),
        (&["SHOW", "SHARDS"], Read),
        (&["SHOW", "STATS"], Read),
        (&["SHOW", "SUBSCRIPTIONS"], Read),
        (&["SHOW", "TAG", "KEY", "CARDINALITY"], Read),
        (&["SHOW", "TAG", "KEY", "EXACT", "CARDINALITY"], Read),
        (&["SHOW", "TAG", "KEYS"], Read),
        (&["SHOW", "TAG", "VALUES"], Read),
        (&["SHOW", "TAG", "VALUES", "CARDINALITY"], Read),
        (&["SHOW", "TAG", "VALUES", "EXACT", "CARDINALITY"], Read),
        (&["SHOW", "USERS"], Read),
        (&["CREATE", "CONTINUOUS", "QUERY"], Write),
        (&["CREATE", "DATABASE"], Write),
        (&["CREATE", "RETENTION", "POLICY"], Write),
        (&["CREATE", "SUBSCRIPTION"], Write),
        (&["CREATE", "USER"], Write),
        (&["DROP", "CONTINUOUS", "QUERY"], Write),
        (&["DROP", "DATABASE"], Write),
        (&["DROP", "MEASUREMENT"], Write),
        (&["DROP", "RETENTION", "POLICY"], Write),
        (&["DROP", "SERIES"], Write),
        (&["DROP", "SHARD"], Write),
        (&["DROP", "SUBSCRIPTION"], Write),
        (&["DROP", "USER"], Write),
        (&["ALTER", "RETENTION", "POLICY"], Write),
        (&["DELETE"], Write),
        (&["GRANT"], Write),
        (&["REVOKE"], Write),
        (&["SET", "PASSWORD", "FOR"], Write),
        (&["KILL", "QUERY"], Local),
    ]
};

fn classify_statement(toks: &[Tok<'_>]) -> Statement {
    let (kind, name) = kind_and_name(toks);
    // (token index, name): sorted by index below, so the order is that of the text.
    let mut named = Vec::new();
    if name == "CREATE DATABASE" || name == "DROP DATABASE" {
        if let Some(db) = toks.get(2).and_then(Tok::ident) {
            named.push((2, db.to_owned()));
        }
    }
    if kind != StatementKind::Local {
        named_databases(toks, &mut named);
    }
    named.sort_by_key(|(i, _)| *i);
    let mut seen = HashSet::new();
    let databases = named
        .into_iter()
        .map(|(_, db)| db)
        .filter(|db| seen.insert(db.clone()))
        .collect();
    Statement {
        kind,
        name,
        databases,
        bound_params: toks.contains(&Tok::Param),
    }
}

fn kind_and_name(toks: &[Tok<'_>]) -> (StatementKind, String) {
    // Any bare INTO makes a SELECT write: at the top level it is the target; in a subquery
    // influxd accepts it, and whether it writes is the executor's business, not ours.
    let has_into = || toks.iter().any(|t| t.is_keyword("INTO"));
    if toks.first().is_some_and(|t| t.is_keyword("SELECT")) {
        return if has_into() {
            (StatementKind::Write, "SELECT INTO".into())
        } else {
            (StatementKind::Read, "SELECT".into())
        };
    }
    if toks.first().is_some_and(|t| t.is_keyword("EXPLAIN")) {
        let analyze = toks.get(1).is_some_and(|t| t.is_keyword("ANALYZE"));
        let mut next = if analyze { 2 } else { 1 };
        if toks.get(next).is_some_and(|t| t.is_keyword("VERBOSE")) {
            next += 1;
        }
        let name = if analyze {
            "EXPLAIN ANALYZE"
        } else {
            "EXPLAIN"
        };
        if !toks.get(next).is_some_and(|t| t.is_keyword("SELECT")) {
            return (StatementKind::Write, name.into());
        }
        // influxd plans EXPLAIN SELECT ... INTO without writing, but that is an executor
        // detail of one version; through the log it costs latency only.
        let kind = if has_into() {
            StatementKind::Write
        } else {
            StatementKind::Read
        };
        return (kind, name.into());
    }
    let best = FORMS
        .iter()
        .filter(|(words, _)| {
            words.len() <= toks.len() && words.iter().zip(toks).all(|(w, t)| t.is_keyword(w))
        })
        .max_by_key(|(words, _)| words.len());
    match best {
        Some((words, kind)) => {
            // `GRANTS FOR` and `PASSWORD FOR`: the FOR is syntax, not part of the name.
            let words = match words.last() {
                Some(&"FOR") => &words[..words.len() - 1],
                _ => words,
            };
            (*kind, words.join(" "))
        }
        None => {
            let first = match toks.first() {
                Some(Tok::Word(w)) => w.to_ascii_uppercase(),
                _ => String::new(),
            };
            (StatementKind::Write, first)
        }
    }
}

/// Collects the databases named by `ON db`, `INTO db.rp.m` and three-part `FROM` sources.
fn named_databases(toks: &[Tok<'_>], out: &mut Vec<(usize, String)>) {
    let closing = closing_parens(toks);
    for (i, tok) in toks.iter().enumerate() {
        if tok.is_keyword("ON") {
            if let Some(db) = toks.get(i + 1).and_then(Tok::ident) {
                out.push((i + 1, db.to_owned()));
            }
        } else if tok.is_keyword("INTO") {
            if let (Some(db), _) = segmented_name(toks, i + 1) {
                out.push((i + 1, db));
            }
        } else if tok.is_keyword("FROM") {
            // A source list: names and subqueries separated by commas. A subquery's own FROM
            // and INTO are met later by this same loop.
            let mut j = i + 1;
            loop {
                if toks.get(j) == Some(&Tok::LParen) {
                    j = closing[j];
                } else {
                    let (db, end) = segmented_name(toks, j);
                    if end == j {
                        break;
                    }
                    out.extend(db.map(|db| (j, db)));
                    j = end;
                }
                if toks.get(j) == Some(&Tok::Comma) {
                    j += 1;
                } else {
                    break;
                }
            }
        }
    }
}

/// Reads a measurement name of one to three dot-separated segments starting at `start`
/// (`m`, `rp.m`, `db.rp.m`, `db..m`; a trailing regex or `:MEASUREMENT` counts as the last
/// segment). Returns the database, when there are three segments, and the index after it.
fn segmented_name(toks: &[Tok<'_>], start: usize) -> (Option<String>, usize) {
    let first = match toks.get(start) {
        Some(t @ (Tok::Word(_) | Tok::Quoted(_) | Tok::Param)) => t,
        Some(Tok::Regex) => return (None, start + 1),
        _ => return (None, start),
    };
    let mut segments = 1;
    let mut i = start + 1;
    while toks.get(i) == Some(&Tok::Dot) {
        i += 1;
        match toks.get(i) {
            Some(Tok::Word(_) | Tok::Quoted(_) | Tok::Param | Tok::Regex) => i += 1,
            Some(Tok::Colon) if toks.get(i + 1).is_some_and(|t| t.is_keyword("MEASUREMENT")) => {
                i += 2
            }
            // An empty segment (`db..m`): the next dot is read by the loop.
            _ => {}
        }
        segments += 1;
    }
    if segments < 3 && toks.get(i) == Some(&Tok::Colon) {
        if toks.get(i + 1).is_some_and(|t| t.is_keyword("MEASUREMENT")) {
            segments += 1;
            i += 2;
        }
    } else if segments < 3 && toks.get(i) == Some(&Tok::Regex) {
        segments += 1;
        i += 1;
    }
    let db = if segments == 3 {
        first.ident().map(str::to_owned)
    } else {
        None
    };
    (db, i)
}

/// For each `(`, the index after the `)` that closes it (or the end); computed once so that
/// deeply nested subqueries cost linear time.
fn closing_parens(toks: &[Tok<'_>]) -> Vec<usize> {
    let mut closing = vec![toks.len(); toks.len()];
    let mut open = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::LParen => open.push(i),
            Tok::RParen => {
                if let Some(o) = open.pop() {
                    closing[o] = i + 1;
                }
            }
            _ => {}
        }
    }
    closing
}

/// A token, as far as classification cares. Whitespace and comments are not tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    /// A bare identifier or keyword, as written.
    Word(&'a str),
    /// A double-quoted identifier, unescaped; never a keyword.
    Quoted(String),
    /// A single-quoted string.
    Str,
    /// A bound parameter, `$name` or `$"name"`.
    Param,
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
    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// The name an identifier position would hold; none for a bound parameter, whose value
    /// comes with the request.
    fn ident(&self) -> Option<&str> {
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

    fn next_token(&mut self) -> Result<Option<Tok<'a>>, String> {
        loop {
            let start = self.pos;
            let Some(c) = self.peek() else {
                return Ok(None);
            };
            let tok = match c {
                // influxd reads '\r' as '\n'; other whitespace is an illegal character.
                ' ' | '\t' | '\n' | '\r' => {
                    self.bump();
                    continue;
                }
                '-' if self.peek2() == Some('-') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' || c == '\r' {
                            break;
                        }
                    }
                    self.regex_ok = false;
                    continue;
                }
                // Even where a regex may start: a regex starting with `*` never compiles, so
                // in a query influxd accepts, `/*` is always a comment.
                '/' if self.peek2() == Some('*') => {
                    self.pos += 2;
                    match self.src[self.pos..].find("*/") {
                        Some(end) => self.pos += end + 2,
                        None => return Err(self.error("unterminated block comment", start)),
                    }
                    self.regex_ok = false;
                    continue;
                }
                '/' if self.regex_ok => {
                    self.bump();
                    self.regex(start)?;
                    Tok::Regex
                }
                '\'' => {
                    self.quoted('\'', start)?;
                    Tok::Str
                }
                '"' => Tok::Quoted(self.quoted('"', start)?),
                '$' => {
                    self.bump();
                    if self.peek() == Some('"') {
                        self.quoted('"', start)?;
                    } else {
                        self.bare();
                    }
                    Tok::Param
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
            };
            self.after(&tok);
            return Ok(Some(tok));
        }
    }

    /// Updates the regex context the way influxd's parser would see it after `tok`.
    fn after(&mut self, tok: &Tok<'_>) {
        let name = matches!(tok, Tok::Word(_) | Tok::Quoted(_) | Tok::Param);
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
    fn quoted(&mut self, quote: char, start: usize) -> Result<String, String> {
        let what = if quote == '"' {
            "unterminated quoted identifier"
        } else {
            "unterminated string"
        };
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                Some(c) if c == quote => return Ok(value),
                None | Some('\n' | '\r') => return Err(self.error(what, start)),
                Some('\\') => match self.bump() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                    // influxd rejects other escapes; keep them so the boundary stays right.
                    Some(c) if c != '\n' && c != '\r' => {
                        value.push('\\');
                        value.push(c);
                    }
                    _ => return Err(self.error(what, start)),
                },
                Some(c) => value.push(c),
            }
        }
    }

    /// The rest of a regex after its opening `/`. Only `\/` is an escape: a backslash before
    /// anything else stands for itself and the next character is read on its own, so `\\/`
    /// does not end the regex.
    fn regex(&mut self, start: usize) -> Result<(), String> {
        loop {
            match self.bump() {
                Some('/') => return Ok(()),
                Some('\\') => {
                    self.eat('/');
                }
                None | Some('\n' | '\r') => {
                    return Err(self.error("unterminated regex", start));
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

    /// `what` at the position of byte `at`: 1-based line and character, where `\r\n` and a
    /// lone `\r` end a line as in influxd's scanner.
    fn error(&self, what: &str, at: usize) -> String {
        let (mut line, mut col) = (1, 1);
        let mut chars = self.src[..at].chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\r' && chars.peek() == Some(&'\n') {
                continue;
            }
            if c == '\n' || c == '\r' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        format!("{what} at line {line}, char {col}")
    }
}

#[cfg(test)]
mod tests {
    use super::StatementKind::{Local, Read, Write};
    use super::*;

    fn one(q: &str) -> Statement {
        let c = classify(q).unwrap_or_else(|e| panic!("{q:?}: {e}"));
        assert_eq!(c.statements.len(), 1, "{q:?}: {:?}", c.statements);
        c.statements.into_iter().next().unwrap()
    }

    fn kinds(q: &str) -> Vec<(StatementKind, String)> {
        classify(q)
            .unwrap_or_else(|e| panic!("{q:?}: {e}"))
            .statements
            .into_iter()
            .map(|s| (s.kind, s.name))
            .collect()
    }

    #[track_caller]
    fn check(q: &str, kind: StatementKind, name: &str, databases: &[&str]) {
        let s = one(q);
        assert_eq!(
            (s.kind, s.name.as_str(), s.databases.clone()),
            (
                kind,
                name,
                databases.iter().map(|d| d.to_string()).collect()
            ),
            "{q:?}"
        );
    }

    /// Every statement of the InfluxQL 1.x reference, in the order of its statement list,
    /// with the variants of its grammar.
    #[test]
    fn every_statement_of_the_reference() {
        let cases: &[(&str, StatementKind, &str, &[&str])] = &[
            // ALTER RETENTION POLICY
            (r#"ALTER RETENTION POLICY "1h.cpu" ON "mydb" DEFAULT"#, Write, "ALTER RETENTION POLICY", &["mydb"]),
            ("ALTER RETENTION POLICY policy1 ON somedb DURATION 1h REPLICATION 4", Write, "ALTER RETENTION POLICY", &["somedb"]),
            ("ALTER RETENTION POLICY rp ON db SHARD DURATION 2h", Write, "ALTER RETENTION POLICY", &["db"]),
            // CREATE CONTINUOUS QUERY
            (r#"CREATE CONTINUOUS QUERY "10m_event_count" ON "db_name" BEGIN SELECT count("value") INTO "6_months"."events" FROM "events" GROUP BY time(10m) END"#, Write, "CREATE CONTINUOUS QUERY", &["db_name"]),
            (r#"CREATE CONTINUOUS QUERY "1h_event_count" ON "db_name" BEGIN SELECT sum("count") as "count" INTO "2_years"."events" FROM "6_months"."events" GROUP BY time(1h) END"#, Write, "CREATE CONTINUOUS QUERY", &["db_name"]),
            (r#"CREATE CONTINUOUS QUERY "cpu_mean" ON "db_name" RESAMPLE EVERY 10s FOR 2m BEGIN SELECT mean("value") INTO "cpu_mean" FROM "cpu" GROUP BY time(1m) END"#, Write, "CREATE CONTINUOUS QUERY", &["db_name"]),
            (r#"CREATE CONTINUOUS QUERY cq ON src BEGIN SELECT mean(*) INTO "dst"."autogen".:MEASUREMENT FROM /.*/ GROUP BY time(30m),* END"#, Write, "CREATE CONTINUOUS QUERY", &["src", "dst"]),
            // CREATE DATABASE
            ("CREATE DATABASE foo", Write, "CREATE DATABASE", &["foo"]),
            (r#"CREATE DATABASE "bar" WITH DURATION 1d REPLICATION 1 SHARD DURATION 30m NAME "myrp""#, Write, "CREATE DATABASE", &["bar"]),
            (r#"CREATE DATABASE "mydb" WITH NAME "myrp""#, Write, "CREATE DATABASE", &["mydb"]),
            // CREATE RETENTION POLICY
            (r#"CREATE RETENTION POLICY "10m.events" ON "somedb" DURATION 60m REPLICATION 2"#, Write, "CREATE RETENTION POLICY", &["somedb"]),
            (r#"CREATE RETENTION POLICY "10m.events" ON "somedb" DURATION 60m REPLICATION 2 DEFAULT"#, Write, "CREATE RETENTION POLICY", &["somedb"]),
            (r#"CREATE RETENTION POLICY "10m.events" ON "somedb" DURATION 60m REPLICATION 2 SHARD DURATION 30m"#, Write, "CREATE RETENTION POLICY", &["somedb"]),
            // CREATE SUBSCRIPTION
            (r#"CREATE SUBSCRIPTION "sub0" ON "mydb"."autogen" DESTINATIONS ALL 'udp://example.com:9090'"#, Write, "CREATE SUBSCRIPTION", &["mydb"]),
            (r#"CREATE SUBSCRIPTION "sub0" ON "mydb"."autogen" DESTINATIONS ANY 'udp://h1.example.com:9090', 'udp://h2.example.com:9090'"#, Write, "CREATE SUBSCRIPTION", &["mydb"]),
            // CREATE USER
            (r#"CREATE USER "jdoe" WITH PASSWORD '1337password'"#, Write, "CREATE USER", &[]),
            (r#"CREATE USER "jdoe" WITH PASSWORD '1337password' WITH ALL PRIVILEGES"#, Write, "CREATE USER", &[]),
            // DELETE
            (r#"DELETE FROM "cpu""#, Write, "DELETE", &[]),
            (r#"DELETE FROM "cpu" WHERE time < '2000-01-01T00:00:00Z'"#, Write, "DELETE", &[]),
            ("DELETE WHERE time < '2000-01-01T00:00:00Z'", Write, "DELETE", &[]),
            ("DELETE FROM /cpu.*/ WHERE host = 'a'", Write, "DELETE", &[]),
            // DROP CONTINUOUS QUERY
            (r#"DROP CONTINUOUS QUERY "myquery" ON "mydb""#, Write, "DROP CONTINUOUS QUERY", &["mydb"]),
            // DROP DATABASE
            (r#"DROP DATABASE "mydb""#, Write, "DROP DATABASE", &["mydb"]),
            // DROP MEASUREMENT
            (r#"DROP MEASUREMENT "cpu""#, Write, "DROP MEASUREMENT", &[]),
            // DROP RETENTION POLICY
            (r#"DROP RETENTION POLICY "1h.cpu" ON "mydb""#, Write, "DROP RETENTION POLICY", &["mydb"]),
            // DROP SERIES
            (r#"DROP SERIES FROM "telegraf"."autogen"."cpu""#, Write, "DROP SERIES", &["telegraf"]),
            (r#"DROP SERIES FROM "cpu" WHERE cpu = 'cpu8'"#, Write, "DROP SERIES", &[]),
            ("DROP SERIES WHERE host = 'a'", Write, "DROP SERIES", &[]),
            // DROP SHARD
            ("DROP SHARD 1", Write, "DROP SHARD", &[]),
            // DROP SUBSCRIPTION
            (r#"DROP SUBSCRIPTION "sub0" ON "mydb"."autogen""#, Write, "DROP SUBSCRIPTION", &["mydb"]),
            // DROP USER
            (r#"DROP USER "jdoe""#, Write, "DROP USER", &[]),
            // EXPLAIN
            ("EXPLAIN SELECT mean(value) FROM cpu", Read, "EXPLAIN", &[]),
            ("EXPLAIN ANALYZE SELECT mean(value) FROM cpu GROUP BY time(1m)", Read, "EXPLAIN ANALYZE", &[]),
            // GRANT
            (r#"GRANT ALL TO "jdoe""#, Write, "GRANT", &[]),
            (r#"GRANT ALL PRIVILEGES TO "jdoe""#, Write, "GRANT", &[]),
            (r#"GRANT READ ON "mydb" TO "jdoe""#, Write, "GRANT", &["mydb"]),
            ("GRANT WRITE ON mydb TO jdoe", Write, "GRANT", &["mydb"]),
            ("GRANT ALL ON mydb TO jdoe", Write, "GRANT", &["mydb"]),
            // KILL QUERY
            ("KILL QUERY 36", Local, "KILL QUERY", &[]),
            (r#"KILL QUERY 53 ON "myhost:8088""#, Local, "KILL QUERY", &[]),
            // REVOKE
            (r#"REVOKE ALL PRIVILEGES FROM "jdoe""#, Write, "REVOKE", &[]),
            (r#"REVOKE READ ON "mydb" FROM "jdoe""#, Write, "REVOKE", &["mydb"]),
            ("REVOKE ALL ON mydb FROM jdoe", Write, "REVOKE", &["mydb"]),
            // SELECT
            (r#"SELECT mean("value") FROM "cpu" WHERE "region" = 'uswest' GROUP BY time(10m) fill(0)"#, Read, "SELECT", &[]),
            ("SELECT * FROM cpu ORDER BY time DESC LIMIT 10 OFFSET 2 SLIMIT 1 SOFFSET 1 tz('Europe/Paris')", Read, "SELECT", &[]),
            (r#"SELECT "water_level" FROM "NOAA_water_database"."autogen"."h2o_feet""#, Read, "SELECT", &["NOAA_water_database"]),
            (r#"SELECT * FROM "NOAA_water_database".."h2o_feet""#, Read, "SELECT", &["NOAA_water_database"]),
            ("SELECT * FROM autogen.cpu", Read, "SELECT", &[]),
            (r#"SELECT mean("water_level") INTO "where_else"."autogen"."average" FROM "h2o_feet" GROUP BY time(12m)"#, Write, "SELECT INTO", &["where_else"]),
            (r#"SELECT * INTO "copy_NOAA_water_database"."autogen".:MEASUREMENT FROM "NOAA_water_database"."autogen"./.*/ GROUP BY *"#, Write, "SELECT INTO", &["copy_NOAA_water_database", "NOAA_water_database"]),
            (r#"SELECT "water_level" INTO "h2o_feet_copy_1" FROM "h2o_feet" WHERE "location" = 'coyote_creek'"#, Write, "SELECT INTO", &[]),
            (r#"SELECT "water_level" INTO "autogen"."h2o_feet_copy_2" FROM "h2o_feet""#, Write, "SELECT INTO", &[]),
            ("SELECT * INTO db..:MEASUREMENT FROM /.*/", Write, "SELECT INTO", &["db"]),
            // SET PASSWORD
            (r#"SET PASSWORD FOR "jdoe" = '1337password'"#, Write, "SET PASSWORD", &[]),
            // SHOW CARDINALITY
            ("SHOW FIELD KEY CARDINALITY", Read, "SHOW FIELD KEY CARDINALITY", &[]),
            ("SHOW FIELD KEY EXACT CARDINALITY ON mydb FROM cpu", Read, "SHOW FIELD KEY EXACT CARDINALITY", &["mydb"]),
            ("SHOW MEASUREMENT CARDINALITY", Read, "SHOW MEASUREMENT CARDINALITY", &[]),
            ("SHOW MEASUREMENT EXACT CARDINALITY ON mydb", Read, "SHOW MEASUREMENT EXACT CARDINALITY", &["mydb"]),
            ("SHOW SERIES CARDINALITY", Read, "SHOW SERIES CARDINALITY", &[]),
            ("SHOW SERIES EXACT CARDINALITY ON mydb WHERE host = 'a'", Read, "SHOW SERIES EXACT CARDINALITY", &["mydb"]),
            ("SHOW TAG KEY CARDINALITY", Read, "SHOW TAG KEY CARDINALITY", &[]),
            ("SHOW TAG KEY EXACT CARDINALITY ON mydb", Read, "SHOW TAG KEY EXACT CARDINALITY", &["mydb"]),
            ("SHOW TAG VALUES CARDINALITY WITH KEY = host", Read, "SHOW TAG VALUES CARDINALITY", &[]),
            ("SHOW TAG VALUES EXACT CARDINALITY ON mydb WITH KEY =~ /h.*/", Read, "SHOW TAG VALUES EXACT CARDINALITY", &["mydb"]),
            // SHOW CONTINUOUS QUERIES
            ("SHOW CONTINUOUS QUERIES", Read, "SHOW CONTINUOUS QUERIES", &[]),
            // SHOW DATABASES
            ("SHOW DATABASES", Read, "SHOW DATABASES", &[]),
            // SHOW DIAGNOSTICS
            ("SHOW DIAGNOSTICS", Read, "SHOW DIAGNOSTICS", &[]),
            // SHOW FIELD KEYS
            ("SHOW FIELD KEYS", Read, "SHOW FIELD KEYS", &[]),
            (r#"SHOW FIELD KEYS ON "mydb" FROM "cpu""#, Read, "SHOW FIELD KEYS", &["mydb"]),
            // SHOW GRANTS
            (r#"SHOW GRANTS FOR "jdoe""#, Read, "SHOW GRANTS", &[]),
            // SHOW MEASUREMENTS
            ("SHOW MEASUREMENTS", Read, "SHOW MEASUREMENTS", &[]),
            (r#"SHOW MEASUREMENTS WHERE "region" = 'uswest' AND "host" = 'serverA'"#, Read, "SHOW MEASUREMENTS", &[]),
            ("SHOW MEASUREMENTS ON db WITH MEASUREMENT =~ /h2o.*/ LIMIT 2", Read, "SHOW MEASUREMENTS", &["db"]),
            ("SHOW MEASUREMENTS WITH MEASUREMENT = /h2o.*/", Read, "SHOW MEASUREMENTS", &[]),
            // SHOW QUERIES
            ("SHOW QUERIES", Read, "SHOW QUERIES", &[]),
            // SHOW RETENTION POLICIES
            (r#"SHOW RETENTION POLICIES ON "mydb""#, Read, "SHOW RETENTION POLICIES", &["mydb"]),
            ("SHOW RETENTION POLICIES", Read, "SHOW RETENTION POLICIES", &[]),
            // SHOW SERIES
            (r#"SHOW SERIES FROM "telegraf"."autogen"."cpu" WHERE cpu = 'cpu8'"#, Read, "SHOW SERIES", &["telegraf"]),
            ("SHOW SERIES ON db FROM /c.*/ LIMIT 1", Read, "SHOW SERIES", &["db"]),
            // SHOW SHARD GROUPS
            ("SHOW SHARD GROUPS", Read, "SHOW SHARD GROUPS", &[]),
            // SHOW SHARDS
            ("SHOW SHARDS", Read, "SHOW SHARDS", &[]),
            // SHOW STATS
            ("SHOW STATS", Read, "SHOW STATS", &[]),
            ("SHOW STATS FOR 'indexes'", Read, "SHOW STATS", &[]),
            // SHOW SUBSCRIPTIONS
            ("SHOW SUBSCRIPTIONS", Read, "SHOW SUBSCRIPTIONS", &[]),
            // SHOW TAG KEYS
            ("SHOW TAG KEYS", Read, "SHOW TAG KEYS", &[]),
            (r#"SHOW TAG KEYS ON "mydb" FROM "cpu" WHERE "region" = 'uswest' LIMIT 1"#, Read, "SHOW TAG KEYS", &["mydb"]),
            // SHOW TAG VALUES
            (r#"SHOW TAG VALUES WITH KEY = "region""#, Read, "SHOW TAG VALUES", &[]),
            (r#"SHOW TAG VALUES FROM "cpu" WITH KEY IN ("region", "host") WHERE "service" = 'redis'"#, Read, "SHOW TAG VALUES", &[]),
            ("SHOW TAG VALUES ON db WITH KEY !~ /^h/", Read, "SHOW TAG VALUES", &["db"]),
            // SHOW USERS
            ("SHOW USERS", Read, "SHOW USERS", &[]),
        ];
        for (q, kind, name, dbs) in cases {
            check(q, *kind, name, dbs);
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        check("select * from cpu", Read, "SELECT", &[]);
        check("SeLeCt value InTo m FrOm cpu", Write, "SELECT INTO", &[]);
        check("create database x", Write, "CREATE DATABASE", &["x"]);
        check("drop Database X", Write, "DROP DATABASE", &["X"]);
        check("show measurements", Read, "SHOW MEASUREMENTS", &[]);
        check(
            "Show Tag Values With Key = host",
            Read,
            "SHOW TAG VALUES",
            &[],
        );
        check(
            "explain analyze select a from b",
            Read,
            "EXPLAIN ANALYZE",
            &[],
        );
        check("kill query 3", Local, "KILL QUERY", &[]);
        check("set password for u = 'p'", Write, "SET PASSWORD", &[]);
        check(
            "alter retention policy rp on db default",
            Write,
            "ALTER RETENTION POLICY",
            &["db"],
        );
    }

    #[test]
    fn quoted_identifiers_are_names_not_keywords() {
        check(r#"SELECT "into" FROM "from""#, Read, "SELECT", &[]);
        check(
            r#"SELECT "INTO", "select" FROM cpu WHERE "into" = 'x'"#,
            Read,
            "SELECT",
            &[],
        );
        check(
            r#"CREATE DATABASE "my db""#,
            Write,
            "CREATE DATABASE",
            &["my db"],
        );
        check(
            r#"CREATE DATABASE "a\"b""#,
            Write,
            "CREATE DATABASE",
            &["a\"b"],
        );
        check(
            r#"DROP DATABASE "back\\slash""#,
            Write,
            "DROP DATABASE",
            &["back\\slash"],
        );
        check(
            r#"CREATE DATABASE "semi;colon""#,
            Write,
            "CREATE DATABASE",
            &["semi;colon"],
        );
        check(
            r#"CREATE DATABASE "café""#,
            Write,
            "CREATE DATABASE",
            &["café"],
        );
        check(
            r#"GRANT READ ON "_gateway" TO u"#,
            Write,
            "GRANT",
            &["_gateway"],
        );
        // A quoted statement keyword is an identifier: not a statement influxd knows.
        check(r#""SELECT" * FROM cpu"#, Write, "", &[]);
        check(r#"SHOW "DATABASES""#, Write, "SHOW", &[]);
    }

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
    fn subqueries() {
        check(
            "SELECT max(m) FROM (SELECT mean(value) AS m FROM cpu GROUP BY time(1m), host)",
            Read,
            "SELECT",
            &[],
        );
        check(
            r#"SELECT max(m) INTO "db2"."rp"."m" FROM (SELECT mean(value) AS m FROM "db1"."rp"."cpu")"#,
            Write,
            "SELECT INTO",
            &["db2", "db1"],
        );
        check(
            "SELECT * FROM (SELECT value INTO foo FROM cpu)",
            Write,
            "SELECT INTO",
            &[],
        );
        check(
            "SELECT * FROM (SELECT * FROM (SELECT a FROM d1.r.m), d2.r.m), d3.r.m, (SELECT b FROM d4..m)",
            Read,
            "SELECT",
            &["d1", "d2", "d3", "d4"],
        );
        check(
            "SELECT * FROM (SELECT a FROM /;'/), /--\"/",
            Read,
            "SELECT",
            &[],
        );
    }

    #[test]
    fn continuous_query_with_select_into_is_one_write() {
        let q = "CREATE CONTINUOUS QUERY \"cq\" ON \"db\"\nBEGIN\n  SELECT mean(v) INTO \"db\".\"rp\".\"m\" FROM \"src\".\"rp\".\"cpu\" WHERE host =~ /;/ GROUP BY time(1h), /tag/ fill(none)\nEND";
        let c = classify(q).unwrap();
        assert_eq!(c.statements.len(), 1);
        check(q, Write, "CREATE CONTINUOUS QUERY", &["db", "src"]);
        let two = format!("{q}; SHOW CONTINUOUS QUERIES");
        assert_eq!(
            kinds(&two),
            [
                (Write, "CREATE CONTINUOUS QUERY".into()),
                (Read, "SHOW CONTINUOUS QUERIES".into())
            ]
        );
    }

    #[test]
    fn multi_statement_queries() {
        let c = classify("SELECT * FROM cpu; SHOW DATABASES").unwrap();
        assert_eq!(c.statements.len(), 2);
        assert!(!c.writes());
        let c = classify("SELECT * FROM cpu; CREATE DATABASE x; SHOW DATABASES").unwrap();
        assert_eq!(c.statements.len(), 3);
        assert!(c.writes());
        assert_eq!(c.statements[1].databases, ["x"]);
        let c = classify("SHOW QUERIES; KILL QUERY 3").unwrap();
        assert!(!c.writes());
        assert!(c.local());
        let c = classify("KILL QUERY 3;DROP DATABASE x").unwrap();
        assert!(c.writes() && c.local());
        assert_eq!(
            kinds("create database a;create database b;drop database a"),
            [
                (Write, "CREATE DATABASE".into()),
                (Write, "CREATE DATABASE".into()),
                (Write, "DROP DATABASE".into())
            ]
        );
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
        check("\n\n   \t SHOW DATABASES", Read, "SHOW DATABASES", &[]);
        check("\r\nSHOW DATABASES\r\n", Read, "SHOW DATABASES", &[]);
        check("SHOW DATABASES;", Read, "SHOW DATABASES", &[]);
        check(";;SHOW DATABASES;;; ;\n", Read, "SHOW DATABASES", &[]);
        check(
            "-- comment\nCREATE DATABASE x",
            Write,
            "CREATE DATABASE",
            &["x"],
        );
        check(
            "/* c */ CREATE /* c */ DATABASE /* c */ x",
            Write,
            "CREATE DATABASE",
            &["x"],
        );
        check("CREATE\nDATABASE\tx", Write, "CREATE DATABASE", &["x"]);
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
        check("SELECT a FROM b WHERE c = /* ; */ 1", Read, "SELECT", &[]);
        check("SELECT /* c */ a FROM b", Read, "SELECT", &[]);
    }

    #[test]
    fn databases_are_extracted() {
        check(
            r#"SELECT * INTO "x"."y"."z" FROM m"#,
            Write,
            "SELECT INTO",
            &["x"],
        );
        check("SELECT * INTO x.y.z FROM m", Write, "SELECT INTO", &["x"]);
        check("SELECT * INTO x..z FROM m", Write, "SELECT INTO", &["x"]);
        check("SELECT * INTO y.z FROM m", Write, "SELECT INTO", &[]);
        check("SELECT * INTO z FROM m", Write, "SELECT INTO", &[]);
        check(
            r#"SELECT * INTO "_gateway"."autogen"."applied" FROM m"#,
            Write,
            "SELECT INTO",
            &["_gateway"],
        );
        check(
            r#"SELECT * INTO"_gateway".autogen.applied FROM m"#,
            Write,
            "SELECT INTO",
            &["_gateway"],
        );
        check(
            "DROP DATABASE _gateway",
            Write,
            "DROP DATABASE",
            &["_gateway"],
        );
        check(
            r#"DROP RETENTION POLICY autogen ON "_gateway""#,
            Write,
            "DROP RETENTION POLICY",
            &["_gateway"],
        );
        check(
            "SELECT * FROM a.b.c, d.e.f, g.h",
            Read,
            "SELECT",
            &["a", "d"],
        );
        check("SELECT * FROM a.b.c, a.b.d", Read, "SELECT", &["a"]);
        check("DROP MEASUREMENT cpu", Write, "DROP MEASUREMENT", &[]);
        check(r#"KILL QUERY 1 ON "db""#, Local, "KILL QUERY", &[]);
    }

    #[test]
    fn bound_parameters() {
        let s = one("DROP DATABASE $db");
        assert_eq!(
            (s.kind, s.databases.len(), s.bound_params),
            (Write, 0, true)
        );
        let s = one("SELECT * INTO $db..m FROM cpu WHERE host = $host");
        assert_eq!((s.kind, s.bound_params), (Write, true));
        let s = one(r#"SELECT * FROM cpu WHERE host = $"my host""#);
        assert_eq!((s.kind, s.bound_params), (Read, true));
        assert!(!one("SELECT * FROM cpu WHERE host = '$x'").bound_params);
        assert!(!one(r#"SELECT "$x" FROM cpu"#).bound_params);
    }

    #[test]
    fn unknown_statements_are_writes() {
        check("INSERT cpu value=1", Write, "INSERT", &[]);
        check("CREATE TABLE x", Write, "CREATE", &[]);
        check("SHOW TABLES", Write, "SHOW", &[]);
        check("SHOW TAG KEY", Write, "SHOW", &[]);
        check("EXPLAIN SHOW DATABASES", Write, "EXPLAIN", &[]);
        check("KILL 3", Write, "KILL", &[]);
        check("* garbage", Write, "", &[]);
        check("42", Write, "", &[]);
        // EXPLAIN of a SELECT ... INTO does not write in influxd 1.6, but nothing is lost
        // by sending it through the log.
        check("EXPLAIN SELECT a INTO b FROM c", Write, "EXPLAIN", &[]);
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
            let e = classify(q).expect_err(q);
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
            assert!(e.starts_with("NUL character"), "{q:?}: {e}");
        }
        // influxd rejects other escapes; the boundaries are still known, so it judges.
        check(r"SELECT * FROM cpu WHERE a = 'x\qy'", Read, "SELECT", &[]);
    }

    #[test]
    fn numbers_and_durations() {
        check(
            "SELECT * FROM cpu WHERE time > now() - 10µs",
            Read,
            "SELECT",
            &[],
        );
        check(
            "SELECT * FROM cpu WHERE v > .5 AND v < 1.5e AND time > 1h30m",
            Read,
            "SELECT",
            &[],
        );
        check("DROP SHARD 12", Write, "DROP SHARD", &[]);
        // `1.` followed by a word: the word is a token of its own, as in influxd.
        check("SELECT 1.into FROM cpu", Write, "SELECT INTO", &[]);
    }

    #[test]
    fn large_and_deeply_nested_queries_take_linear_time() {
        let depth = 50_000;
        let q = format!(
            "{}SELECT a INTO d.r.m FROM x.y.z{}",
            "SELECT * FROM (".repeat(depth),
            ")".repeat(depth)
        );
        let start = std::time::Instant::now();
        let s = one(&q);
        assert_eq!((s.kind, s.databases), (Write, vec!["d".into(), "x".into()]));
        let sources: Vec<String> = (0..50_000).map(|i| format!("db{i}.rp.m")).collect();
        let s = one(&format!("SELECT * FROM {}", sources.join(", ")));
        assert_eq!(s.databases.len(), 50_000);
        let many = "SHOW DATABASES;".repeat(50_000);
        assert_eq!(classify(&many).unwrap().statements.len(), 50_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    /// A small xorshift generator: the same inputs on every run, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const FRAGMENTS: &[&str] = &[
        "SELECT",
        "INTO",
        "FROM",
        "WHERE",
        "GROUP",
        "BY",
        "SHOW",
        "CREATE",
        "DROP",
        "DATABASE",
        "ON",
        "KILL",
        "QUERY",
        "EXPLAIN",
        "BEGIN",
        "END",
        "MEASUREMENT",
        ":",
        "::",
        ";",
        ",",
        ".",
        "..",
        "(",
        ")",
        "=",
        "=~",
        "!~",
        "!",
        "<>",
        "/",
        "//",
        "/*",
        "*/",
        "*",
        "--",
        "\n",
        "\r",
        " ",
        "\t",
        "'",
        "\"",
        "\\",
        "$",
        "$x",
        "1",
        "1.5",
        ".5",
        "10s",
        "µ",
        "é",
        "x",
        "\"q\"",
        "'s'",
        "/re/",
        "\0",
        "\u{feff}",
        "_gateway",
    ];

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut q = String::new();
            for _ in 0..rng.below(24) {
                if rng.below(4) == 0 {
                    q.push(char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'));
                } else {
                    q.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
                }
            }
            if let Ok(c) = classify(&q) {
                for s in &c.statements {
                    assert!(!s.name.chars().any(|c| c.is_lowercase()), "{q:?}");
                }
            }
        }
    }

    #[test]
    fn a_write_anywhere_makes_the_query_write() {
        let reads = [
            "SELECT * FROM cpu WHERE a = 'x;y'",
            "SHOW DATABASES",
            "SELECT * FROM /;/",
            "EXPLAIN SELECT a FROM b",
            "-- c\nSHOW MEASUREMENTS",
        ];
        let writes = [
            "CREATE DATABASE x",
            "SELECT a INTO b FROM c",
            "DROP SERIES FROM cpu",
            "DELETE WHERE time < 0",
            "GRANT ALL TO u",
        ];
        let mut rng = Rng(42);
        for _ in 0..2_000 {
            let n = 1 + rng.below(5);
            let mut parts: Vec<&str> = (0..n).map(|_| reads[rng.below(reads.len())]).collect();
            let has_write = rng.below(2) == 0;
            if has_write {
                let at = rng.below(n + 1);
                parts.insert(at, writes[rng.below(writes.len())]);
            }
            let sep = [";", " ; ", ";\n", ";;", "; /* ; */ "][rng.below(5)];
            let q = parts.join(sep);
            let c = classify(&q).unwrap();
            assert_eq!(c.statements.len(), parts.len(), "{q:?}");
            assert_eq!(c.writes(), has_write, "{q:?}");
        }
    }

    /// Mutating valid queries (cutting them, doubling characters) may make them invalid, but
    /// never panics and never loses a write that survives the mutation intact.
    #[test]
    fn mutated_queries_never_panic() {
        let seeds = [
            "CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT mean(v) INTO db.rp.m FROM /c;'/ GROUP BY time(1h) END",
            "SELECT \"a\\\"b\" FROM cpu WHERE x = 'it\\'s' AND y =~ /a\\/b/ -- c\n; DROP DATABASE \"x\"",
            "SELECT * FROM (SELECT a INTO b FROM c), d.e.f /* x */; SHOW TAG VALUES WITH KEY = \"k\"",
        ];
        let mut rng = Rng(7);
        for seed in seeds {
            let chars: Vec<char> = seed.chars().collect();
            for _ in 0..3_000 {
                let mut m = chars.clone();
                match rng.below(3) {
                    0 => m.truncate(rng.below(chars.len() + 1)),
                    1 => {
                        let at = rng.below(m.len());
                        m.insert(at, m[at]);
                    }
                    _ => {
                        m.remove(rng.below(m.len()));
                    }
                }
                let q: String = m.into_iter().collect();
                let _ = classify(&q);
            }
        }
    }
}
