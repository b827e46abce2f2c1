//! The statements of a query that set or remove a user's password, with the names and
//! passwords as influxd reads them.
//!
//! influxd's portable backup restores users without their passwords, so a node whose influxd
//! was copied from a peer could not give its users their passwords back. The gateway closes
//! that gap by keeping the last password set for each user itself, read here from the queries
//! it replicates.
//!
//! Names and passwords follow influxd 1.x's scanner and parser:
//!
//! - a name is a bare identifier as written, a double-quoted identifier unescaped, or a bound
//!   parameter whose value is `{"identifier": "..."}` (or `{"ident": "..."}`): a plain JSON
//!   string binds as a string literal, where influxd's parser wants an identifier and refuses
//!   the query;
//! - a password is a single-quoted string unescaped, or a bound parameter whose value is a
//!   string or `{"string": "..."}`;
//! - a bare word or `$name` directly followed by a double-quoted identifier is that identifier
//!   alone to influxd's scanner: `DROP USER a"b"` drops `b`, `$a"b"` is the parameter `b`.
//!
//! Bound parameters are substituted in these places by influxd built on influxql 1.1 or later
//! (1.8, and Debian's 1.6 package); one built on an older influxql refuses such a statement,
//! with the whole query, so that it runs nothing.

use serde_json::{Map, Value};

use super::lexer::{self, Spanned, Tok};

/// What one statement does to a user's password, if influxd runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// `CREATE USER` or `SET PASSWORD`.
    Set {
        /// The statement's index in the query: influxd's `statement_id`.
        statement: usize,
        user: String,
        password: String,
    },
    /// `DROP USER`.
    Dropped {
        /// The statement's index in the query: influxd's `statement_id`.
        statement: usize,
        user: String,
    },
}

impl PasswordChange {
    /// The index of the statement that makes the change: influxd's `statement_id`.
    pub fn statement(&self) -> usize {
        match self {
            PasswordChange::Set { statement, .. } | PasswordChange::Dropped { statement, .. } => {
                *statement
            }
        }
    }

    pub fn user(&self) -> &str {
        match self {
            PasswordChange::Set { user, .. } | PasswordChange::Dropped { user, .. } => user,
        }
    }
}

/// The password changes the statements of `q` make, in order, given the request's `params`
/// (its JSON object of bound parameters; empty for none).
///
/// Each is what its statement does if influxd runs it. influxd runs a query's statements in
/// order and stops at the first that fails (`SET PASSWORD` for a user that does not exist,
/// `CREATE USER` for one that does with another password), so which of them took effect is
/// for influxd's answer to say, by `statement_id`.
///
/// Empty when influxd would run none of the query: a lexical error anywhere in `q`, or
/// `params` it cannot read. Statements of other kinds are left out, and so are those influxd's
/// parser refuses, and the whole query with them (a malformed one, a parameter missing or of
/// the wrong kind), and those naming the empty user, which influxd never makes.
pub fn password_changes(q: &str, params: &str) -> Vec<PasswordChange> {
    let Some(params) = Params::read(params) else {
        return Vec::new();
    };
    let Ok(statements) = lexer::spanned_statements(q) else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    for (statement, toks) in statements.enumerate() {
        let Ok(toks) = toks else {
            return Vec::new();
        };
        let toks = as_influxd_scans(q, toks);
        changes.extend(change(statement, &toks, &params));
    }
    changes
}

/// The change one statement makes, when it is one of the three forms.
fn change(statement: usize, toks: &[Tok<'_>], params: &Params) -> Option<PasswordChange> {
    let words_at = |at: usize, words: &[&str]| {
        toks.len() >= at + words.len()
            && words.iter().zip(&toks[at..]).all(|(w, t)| t.is_keyword(w))
    };
    let set = |user: &Tok<'_>, password: &Tok<'_>| {
        Some(PasswordChange::Set {
            statement,
            user: params.name(user)?,
            password: params.password(password)?,
        })
    };
    if words_at(0, &["CREATE", "USER"])
        && words_at(3, &["WITH", "PASSWORD"])
        && (toks.len() == 6 || (toks.len() == 9 && words_at(6, &["WITH", "ALL", "PRIVILEGES"])))
    {
        set(&toks[2], &toks[5])
    } else if words_at(0, &["SET", "PASSWORD", "FOR"]) && toks.len() == 6 && toks[4] == Tok::Eq {
        set(&toks[3], &toks[5])
    } else if words_at(0, &["DROP", "USER"]) && toks.len() == 3 {
        Some(PasswordChange::Dropped {
            statement,
            user: params.name(&toks[2])?,
        })
    } else {
        None
    }
}

/// The tokens of one statement as influxd's scanner reads them: a bare word or `$name`
/// touching the double-quoted identifier after it is that identifier alone (its scanner reads
/// an identifier's bare part and, on meeting a `"`, returns the quoted part instead).
fn as_influxd_scans<'a>(q: &str, toks: Vec<Spanned<'a>>) -> Vec<Tok<'a>> {
    let mut out = Vec::with_capacity(toks.len());
    let mut toks = toks.into_iter().peekable();
    while let Some(Spanned { tok, span }) = toks.next() {
        let bare = match &tok {
            Tok::Word(_) => true,
            // `$"a"` is already quoted; a `"` after it starts an identifier of its own.
            Tok::Param(_) => !q[span.clone()].starts_with("$\""),
            _ => false,
        };
        let glued = if bare {
            toks.next_if(|next| matches!(next.tok, Tok::Quoted(_)) && next.span.start == span.end)
        } else {
            None
        };
        out.push(match (tok, glued.map(|g| g.tok)) {
            (Tok::Param(_), Some(Tok::Quoted(name))) => Tok::Param(name),
            (_, Some(Tok::Quoted(name))) => Tok::Quoted(name),
            (tok, _) => tok,
        });
    }
    out
}

/// A request's bound parameters, by name (without the `$`).
struct Params(Map<String, Value>);

impl Params {
    /// `params` as influxd's `/query` handler reads it: empty is none; otherwise the first
    /// JSON value, whatever follows it, must be an object (or `null`, none), else influxd
    /// answers 400 and runs nothing.
    fn read(raw: &str) -> Option<Params> {
        // Go's decoder ends a leading `null` at the next byte, whatever it is (`nullx`), where
        // serde_json wants a delimiter.
        let value = raw.trim_start_matches([' ', '\t', '\n', '\r']);
        if raw.is_empty() || value.starts_with("null") {
            return Some(Params(Map::new()));
        }
        match serde_json::Deserializer::from_str(value)
            .into_iter::<Value>()
            .next()?
        {
            Ok(Value::Object(map)) => Some(Params(map)),
            _ => None,
        }
    }

    /// A user name token's value; none for an empty name, which no user has.
    fn name(&self, tok: &Tok<'_>) -> Option<String> {
        let name = match tok {
            Tok::Word(w) => *w,
            Tok::Quoted(name) => name.as_str(),
            Tok::Param(param) => match self.bound(param)? {
                Value::Object(binding) => single(binding, &["identifier", "ident"])?,
                _ => return None,
            },
            _ => return None,
        };
        (!name.is_empty()).then(|| name.to_owned())
    }

    /// A password token's value.
    fn password(&self, tok: &Tok<'_>) -> Option<String> {
        match tok {
            Tok::Str(password) => Some(password.clone()),
            Tok::Param(param) => match self.bound(param)? {
                Value::String(password) => Some(password.clone()),
                Value::Object(binding) => single(binding, &["string"]).map(str::to_owned),
                _ => None,
            },
            _ => None,
        }
    }

    /// influxd never substitutes a parameter with an empty name (`$`, `$""`), whatever
    /// `params` holds.
    fn bound(&self, param: &str) -> Option<&Value> {
        if param.is_empty() {
            return None;
        }
        self.0.get(param)
    }
}

/// The string of a typed binding (`{"identifier": "bob"}`), which influxd takes only with
/// exactly one entry, of one of `kinds`.
fn single<'v>(binding: &'v Map<String, Value>, kinds: &[&str]) -> Option<&'v str> {
    match binding.iter().next() {
        Some((kind, Value::String(s))) if binding.len() == 1 && kinds.contains(&kind.as_str()) => {
            Some(s)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{password_changes, PasswordChange};
    use crate::influxql::tests::Rng;

    fn set(statement: usize, user: &str, password: &str) -> PasswordChange {
        PasswordChange::Set {
            statement,
            user: user.into(),
            password: password.into(),
        }
    }

    fn dropped(statement: usize, user: &str) -> PasswordChange {
        PasswordChange::Dropped {
            statement,
            user: user.into(),
        }
    }

    #[track_caller]
    fn check(q: &str, params: &str, expected: &[PasswordChange]) {
        assert_eq!(
            password_changes(q, params),
            expected,
            "{q:?} with {params:?}"
        );
    }

    /// Queries of one statement and the change it makes, without parameters.
    #[track_caller]
    fn check_one(cases: &[(&str, PasswordChange)]) {
        for (q, change) in cases {
            check(q, "", std::slice::from_ref(change));
        }
    }

    /// Queries that change no password, however the parameters are given.
    #[track_caller]
    fn check_none(queries: &[&str], params: &str) {
        for q in queries {
            check(q, params, &[]);
        }
    }

    #[test]
    fn the_three_forms() {
        check_one(&[
            (
                "CREATE USER jdoe WITH PASSWORD '1337password'",
                set(0, "jdoe", "1337password"),
            ),
            (
                r#"CREATE USER "jdoe" WITH PASSWORD '1337password' WITH ALL PRIVILEGES"#,
                set(0, "jdoe", "1337password"),
            ),
            (r#"SET PASSWORD FOR "jdoe" = 'new'"#, set(0, "jdoe", "new")),
            ("SET PASSWORD FOR jdoe='new'", set(0, "jdoe", "new")),
            (r#"DROP USER "jdoe""#, dropped(0, "jdoe")),
            ("DROP USER jdoe;", dropped(0, "jdoe")),
        ]);
    }

    #[test]
    fn keywords_are_case_insensitive_and_names_keep_their_case() {
        check_one(&[
            ("create user Bob with password 'PW'", set(0, "Bob", "PW")),
            (
                "Create User bOB With Password 'x' with all Privileges",
                set(0, "bOB", "x"),
            ),
            ("set password for BOB = 'y'", set(0, "BOB", "y")),
            ("drop user Bob", dropped(0, "Bob")),
            ("DrOp UsEr _b0b", dropped(0, "_b0b")),
        ]);
    }

    #[test]
    fn quoted_names_are_unescaped() {
        check_one(&[
            (r#"DROP USER "a\"b""#, dropped(0, "a\"b")),
            (r#"DROP USER "back\\slash""#, dropped(0, "back\\slash")),
            (r#"DROP USER "it\'s""#, dropped(0, "it's")),
            (r#"DROP USER "new\nline""#, dropped(0, "new\nline")),
            (r#"DROP USER "semi;colon""#, dropped(0, "semi;colon")),
            (r#"DROP USER "two words""#, dropped(0, "two words")),
            (
                r#"DROP USER "-- not a comment""#,
                dropped(0, "-- not a comment"),
            ),
            (r#"DROP USER "café""#, dropped(0, "café")),
            (r#"DROP USER "USER""#, dropped(0, "USER")),
            (
                r#"CREATE USER "with password" WITH PASSWORD 'p'"#,
                set(0, "with password", "p"),
            ),
            (r#"SET PASSWORD FOR "a=b" = 'p'"#, set(0, "a=b", "p")),
        ]);
    }

    #[test]
    fn passwords_are_unescaped() {
        check_one(&[
            (r"SET PASSWORD FOR u = 'it\'s'", set(0, "u", "it's")),
            (
                r"SET PASSWORD FOR u = 'back\\slash'",
                set(0, "u", "back\\slash"),
            ),
            (r"SET PASSWORD FOR u = '\\\''", set(0, "u", "\\'")),
            (r#"SET PASSWORD FOR u = 'dq\"'"#, set(0, "u", "dq\"")),
            (r#"SET PASSWORD FOR u = 'a"b'"#, set(0, "u", "a\"b")),
            (
                r"SET PASSWORD FOR u = 'new\nline'",
                set(0, "u", "new\nline"),
            ),
            (
                "SET PASSWORD FOR u = 'semi;colon'",
                set(0, "u", "semi;colon"),
            ),
            (
                "SET PASSWORD FOR u = '-- x /* y */'",
                set(0, "u", "-- x /* y */"),
            ),
            ("SET PASSWORD FOR u = '$p'", set(0, "u", "$p")),
            (
                "SET PASSWORD FOR u = 'pässwörd 🔑'",
                set(0, "u", "pässwörd 🔑"),
            ),
            ("SET PASSWORD FOR u = ''", set(0, "u", "")),
            (
                r"CREATE USER u WITH PASSWORD 'a\'b\\c'",
                set(0, "u", "a'b\\c"),
            ),
        ]);
    }

    #[test]
    fn multiple_statements_keep_their_order_and_indices() {
        check(
            "CREATE USER a WITH PASSWORD 'x'; SET PASSWORD FOR a = 'y'; DROP USER a",
            "",
            &[set(0, "a", "x"), set(1, "a", "y"), dropped(2, "a")],
        );
        // Indices count statements as influxd does: empty ones are not statements.
        check(
            ";;SHOW USERS;; CREATE DATABASE d;\nSET PASSWORD FOR b = 'p' ;; ;GRANT ALL TO b;DROP USER c;",
            "",
            &[set(2, "b", "p"), dropped(4, "c")],
        );
        check(
            "SET PASSWORD FOR a = 'x;DROP USER a'; SELECT * FROM /;/; DROP USER \"b;\"",
            "",
            &[set(0, "a", "x;DROP USER a"), dropped(2, "b;")],
        );
        // A statement that is not one of the forms still takes its index.
        check("DROP USER; DROP USER a", "", &[dropped(1, "a")]);
        let changes = password_changes(
            "SHOW USERS; DROP USER z; CREATE USER y WITH PASSWORD 'q'",
            "",
        );
        let at: Vec<(usize, &str)> = changes.iter().map(|c| (c.statement(), c.user())).collect();
        assert_eq!(at, [(1, "z"), (2, "y")]);
    }

    #[test]
    fn comments_and_whitespace() {
        check_one(&[
            (
                "CREATE /* c */ USER -- c\n a /**/WITH\tPASSWORD\r\n'p'",
                set(0, "a", "p"),
            ),
            ("-- DROP USER x\nDROP USER y", dropped(0, "y")),
            (
                "/* SET PASSWORD FOR x = 'p'; */ SET PASSWORD FOR y = 'q'",
                set(0, "y", "q"),
            ),
            ("DROP USER y -- ; DROP USER x", dropped(0, "y")),
            ("SET PASSWORD FOR y = /* 'no' */ 'yes'", set(0, "y", "yes")),
        ]);
        check_none(
            &[
                "-- CREATE USER a WITH PASSWORD 'p'",
                "/* DROP USER a */",
                "SHOW USERS -- ; DROP USER a",
            ],
            "",
        );
    }

    #[test]
    fn other_statements_are_ignored() {
        check_none(
            &[
                "SHOW USERS",
                "SHOW GRANTS FOR bob",
                "GRANT ALL PRIVILEGES TO bob",
                "REVOKE ALL PRIVILEGES FROM bob",
                "GRANT READ ON db TO bob",
                "CREATE DATABASE bob",
                "DROP DATABASE bob",
                "DROP MEASUREMENT bob",
                "SELECT * FROM cpu WHERE u = 'CREATE USER a WITH PASSWORD ''x'''",
                "SELECT \"DROP USER a\" FROM cpu",
                "SELECT * FROM /DROP USER a/",
                r#"CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT mean(v) INTO m FROM "DROP USER a" GROUP BY time(1h) END"#,
                // Quoted identifiers are never keywords.
                r#""DROP" USER a"#,
                r#"DROP "USER" a"#,
                r#"CREATE USER a "WITH" PASSWORD 'p'"#,
                r#"SET "PASSWORD" FOR a = 'p'"#,
                "",
                ";;",
            ],
            "",
        );
    }

    #[test]
    fn malformed_statements_are_left_out() {
        check_none(
            &[
                "CREATE USER",
                "CREATE USER a",
                "CREATE USER a WITH",
                "CREATE USER a WITH PASSWORD",
                "CREATE USER a PASSWORD 'p'",
                "CREATE USER a WITH PASSWORD 'p' WITH",
                "CREATE USER a WITH PASSWORD 'p' WITH ALL",
                "CREATE USER a WITH PASSWORD 'p' WITH ALL PRIVILEGES x",
                "CREATE USER a WITH PASSWORD 'p' ALL PRIVILEGES",
                "CREATE USER a WITH PASSWORD 'p' 'q'",
                r#"CREATE USER a WITH PASSWORD "p""#,
                "CREATE USER a WITH PASSWORD p",
                "CREATE USER a WITH PASSWORD 1",
                "CREATE USER 'a' WITH PASSWORD 'p'",
                "CREATE USER a.b WITH PASSWORD 'p'",
                "CREATE USERS a WITH PASSWORD 'p'",
                "SET PASSWORD FOR a 'p'",
                "SET PASSWORD FOR a == 'p'",
                "SET PASSWORD FOR a =~ 'p'",
                "SET PASSWORD FOR a = /p/",
                "SET PASSWORD a = 'p'",
                "SET PASSWORD FOR = 'p'",
                "SET PASSWORD FOR a = 'p' 'q'",
                "SET PASSWORD FOR a, b = 'p'",
                "SET FOR a = 'p'",
                "DROP USER",
                "DROP USER a b",
                "DROP USER a, b",
                "DROP USER 'a'",
                "DROP USER 1",
                "DROP USER a.b",
                "DROP USERS a",
                "DROP USER *",
                // No user has an empty name; influxd refuses to make one.
                r#"DROP USER """#,
                r#"CREATE USER "" WITH PASSWORD 'p'"#,
                r#"SET PASSWORD FOR "" = 'p'"#,
            ],
            "",
        );
        // Well-formed statements around a malformed one still count.
        check(
            "DROP USER a b; DROP USER c; SET PASSWORD FOR d 'p'",
            "",
            &[dropped(1, "c")],
        );
    }

    #[test]
    fn a_lexical_error_anywhere_yields_nothing() {
        check_none(
            &[
                "DROP USER a; SELECT 'unterminated",
                "CREATE USER a WITH PASSWORD 'p'; DROP USER \"b",
                "SET PASSWORD FOR a = 'p\n'",
                "SET PASSWORD FOR a = 'p\\",
                "DROP USER a /* unterminated",
                "DROP USER a; SELECT * FROM /x",
                "DROP USER a\0",
                "DROP USER a; SHOW DATABASES\0",
                "DROP USER $\"a",
            ],
            "",
        );
    }

    /// influxd's scanner reads a bare part directly followed by a quoted identifier as that
    /// identifier alone.
    #[test]
    fn a_bare_word_touching_a_quoted_identifier_is_that_identifier() {
        check_one(&[
            (r#"DROP USER a"b""#, dropped(0, "b")),
            (r#"SET PASSWORD FOR x"y" = 'p'"#, set(0, "y", "p")),
            (
                r#"CREATE USER x"y z" WITH PASSWORD 'p'"#,
                set(0, "y z", "p"),
            ),
            (r#"DROP USER user"admin""#, dropped(0, "admin")),
        ]);
        check_none(
            &[
                // An empty quoted part is an empty name.
                r#"DROP USER a"""#,
                // A keyword swallowed by the identifier is no longer a keyword.
                r#"DROP USER"a""#,
                r#"SET PASSWORD FOR"a" = 'p'"#,
                r#"CREATE USER a WITH PASSWORD"p" 'p'"#,
                // Apart, they are two names.
                r#"DROP USER a "b""#,
                r#"DROP USER a/**/"b""#,
                // Only a bare part glues: two quoted identifiers stay two.
                r#"DROP USER "a""b""#,
                // A bare part after the quoted one is a name of its own.
                r#"DROP USER "a"b"#,
            ],
            "",
        );
    }

    #[test]
    fn bound_parameters() {
        let params = r#"{
            "u": {"identifier": "bob"},
            "v": {"ident": "eve"},
            "p": "secret",
            "q": {"string": "other"},
            "my name": {"identifier": "spaced"},
            "b": {"identifier": "glued"}
        }"#;
        check(
            "CREATE USER $u WITH PASSWORD $p; SET PASSWORD FOR $v = $q; DROP USER $\"my name\"",
            params,
            &[
                set(0, "bob", "secret"),
                set(1, "eve", "other"),
                dropped(2, "spaced"),
            ],
        );
        check(
            "CREATE USER $u WITH PASSWORD 'literal' WITH ALL PRIVILEGES",
            params,
            &[set(0, "bob", "literal")],
        );
        check(
            "SET PASSWORD FOR literal = $p",
            params,
            &[set(0, "literal", "secret")],
        );
        // `$a"b"` is the parameter `b`; `$"my name""b"` is a parameter and then a name.
        check("DROP USER $a\"b\"", params, &[dropped(0, "glued")]);
        check("DROP USER $\"my name\"\"b\"", params, &[]);
        // Parameter names are case-sensitive; values are used as they are.
        check("DROP USER $U", params, &[]);
        check(
            r#"SET PASSWORD FOR $u = $p"#,
            r#"{"u": {"identifier": "we\"ird\\ name"}, "p": "it's \\ \"x\" \u00e9"}"#,
            &[set(0, "we\"ird\\ name", "it's \\ \"x\" é")],
        );
    }

    #[test]
    fn unresolvable_parameters_leave_their_statement_out() {
        let params = r#"{
            "plain": "bob",
            "ident": {"identifier": "bob"},
            "num": 1,
            "float": 1.5,
            "yes": true,
            "nil": null,
            "list": ["bob"],
            "two": {"identifier": "bob", "string": "bob"},
            "empty": {},
            "numident": {"identifier": 1},
            "regex": {"regex": "bob"},
            "upper": {"IDENTIFIER": "bob"},
            "emptyname": {"identifier": ""},
            "": {"identifier": "nameless"}
        }"#;
        check_none(
            &[
                // A plain string binds as a string literal, not a name.
                "DROP USER $plain",
                "DROP USER $num",
                "DROP USER $float",
                "DROP USER $yes",
                "DROP USER $nil",
                "DROP USER $list",
                "DROP USER $two",
                "DROP USER $empty",
                "DROP USER $numident",
                "DROP USER $regex",
                "DROP USER $upper",
                "DROP USER $emptyname",
                "DROP USER $missing",
                // influxd never binds an empty parameter name.
                "DROP USER $",
                "DROP USER $\"\"",
                // A name binding is not a password.
                "SET PASSWORD FOR bob = $ident",
                "SET PASSWORD FOR bob = $num",
                "SET PASSWORD FOR bob = $yes",
                "SET PASSWORD FOR bob = $nil",
                "SET PASSWORD FOR bob = $list",
                "SET PASSWORD FOR bob = $two",
                "SET PASSWORD FOR bob = $missing",
                "CREATE USER $plain WITH PASSWORD 'p'",
                "CREATE USER $ident WITH PASSWORD $ident",
                // Keywords never come from a parameter.
                "DROP $ident bob",
            ],
            params,
        );
        check(
            "DROP USER $missing; DROP USER $ident; SET PASSWORD FOR $ident = $missing",
            params,
            &[dropped(1, "bob")],
        );
    }

    #[test]
    fn params_as_influxd_reads_them() {
        let q = "DROP USER literal; DROP USER $u";
        let both = [dropped(0, "literal"), dropped(1, "bob")];
        let literal_only = [dropped(0, "literal")];
        for (params, expected) in [
            ("", &literal_only[..]),
            ("null", &literal_only),
            (" null", &literal_only),
            ("nullx", &literal_only),
            ("{}", &literal_only),
            (r#"{"u": {"identifier": "bob"}}"#, &both),
            (" \n{\"u\": {\"identifier\": \"bob\"}}\n ", &both),
            // influxd reads the first JSON value and ignores what follows it.
            (r#"{"u": {"identifier": "bob"}} trailing {"#, &both),
            (r#"{"u": {"identifier": "bob"}}{"u": 1}"#, &both),
            // A repeated name: the last value counts, as in a Go map.
            (r#"{"u": "x", "u": {"identifier": "bob"}}"#, &both),
            (r#"{"u": {"identifier": "x", "identifier": "bob"}}"#, &both),
            // influxd answers 400 and runs nothing.
            (" ", &[]),
            ("{", &[]),
            ("{\"u\": }", &[]),
            ("not json", &[]),
            ("[]", &[]),
            ("\"u\"", &[]),
            ("1", &[]),
            ("true", &[]),
            ("nul", &[]),
        ] {
            check(q, params, expected);
        }
    }

    /// Mutated and spliced statements and parameters never panic, and never yield an empty
    /// name or an index past the query's statements.
    #[test]
    fn mutated_input_never_panics() {
        let queries = [
            r#"CREATE USER "a\"b" WITH PASSWORD 'it\'s' WITH ALL PRIVILEGES; SET PASSWORD FOR $u = $p"#,
            r#"DROP USER x"y"; SET PASSWORD FOR $a"u" = 'p\\'; /* c */ DROP USER $"u" -- c"#,
        ];
        let params = [
            r#"{"u": {"identifier": "bob"}, "p": "pw"}"#,
            r#"{"u": {"ident": "x"}, "p": {"string": "y"}}"#,
        ];
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let mut q: Vec<char> = queries[rng.below(queries.len())].chars().collect();
            let mut p: Vec<char> = params[rng.below(params.len())].chars().collect();
            for _ in 0..1 + rng.below(3) {
                let target = if rng.below(3) == 0 { &mut p } else { &mut q };
                if target.is_empty() {
                    continue;
                }
                let at = rng.below(target.len());
                match rng.below(3) {
                    0 => target.truncate(at),
                    1 => target.insert(at, target[rng.below(target.len())]),
                    _ => {
                        target.remove(at);
                    }
                }
            }
            let q: String = q.into_iter().collect();
            let p: String = p.into_iter().collect();
            let statements = q.split(';').count();
            for change in password_changes(&q, &p) {
                assert!(!change.user().is_empty(), "{q:?} {p:?}");
                assert!(change.statement() < statements, "{q:?} {p:?}");
            }
        }
    }
}
