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
//! `lexer` splits a query into statements where influxd does; `statement` says where each
//! statement must run and which databases it names; `users` reads the statements that set or
//! remove a user's password.

mod lexer;
mod statement;
mod users;

pub use lexer::{InfluxqlError, Problem};
pub use statement::{Statement, StatementKind};
pub use users::{password_changes, PasswordChange};

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
pub fn classify(q: &str) -> Result<Classified, InfluxqlError> {
    let statements = lexer::statements(q)?
        .map(|toks| toks.map(|toks| Statement::classify(&toks)))
        .collect::<Result<_, _>>()?;
    Ok(Classified { statements })
}

#[cfg(test)]
mod tests {
    //! The whole of `classify`: statements split and classified together, and inputs that
    //! must never make it panic. `one`, `kinds`, `check` and `check_all` serve the tests of
    //! every part.

    use super::StatementKind::Write;
    use super::*;

    pub(super) fn one(q: &str) -> Statement {
        let c = classify(q).unwrap_or_else(|e| panic!("{q:?}: {e}"));
        assert_eq!(c.statements.len(), 1, "{q:?}: {:?}", c.statements);
        c.statements.into_iter().next().unwrap()
    }

    pub(super) fn kinds(q: &str) -> Vec<(StatementKind, String)> {
        classify(q)
            .unwrap_or_else(|e| panic!("{q:?}: {e}"))
            .statements
            .into_iter()
            .map(|s| (s.kind, s.name))
            .collect()
    }

    #[track_caller]
    pub(super) fn check(q: &str, kind: StatementKind, name: &str, databases: &[&str]) {
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

    /// A query, and the kind, name and databases of its one statement.
    pub(super) type Case<'a> = (&'a str, StatementKind, &'a str, &'a [&'a str]);

    /// [`check`] for each case.
    #[track_caller]
    pub(super) fn check_all(cases: &[Case]) {
        for (q, kind, name, databases) in cases {
            check(q, *kind, name, databases);
        }
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

    /// A small xorshift generator: the same inputs on every run, no dependency.
    pub(super) struct Rng(pub(super) u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        pub(super) fn below(&mut self, n: usize) -> usize {
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
