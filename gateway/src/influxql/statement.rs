//! What one statement of a query is: where it must run (its kind), its name, and the
//! databases it names. Judged from the leading keywords, as influxd's parser dispatches on
//! them, and for `SELECT` from a bare `INTO` anywhere in it.

use std::collections::HashSet;

use super::lexer::Tok;

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

impl Statement {
    /// Classifies the tokens of one statement.
    pub(super) fn classify(toks: &[Tok<'_>]) -> Statement {
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
            bound_params: toks.iter().any(|t| matches!(t, Tok::Param(_))),
        }
    }
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

fn kind_and_name(toks: &[Tok<'_>]) -> (StatementKind, String) {
    // Any bare INTO makes a SELECT write: at the top level it is the target; in a subquery
    // influxd accepts it, and whether it writes is the executor's business, not ours.
    if toks.first().is_some_and(|t| t.is_keyword("SELECT")) {
        return if has_into(toks) {
            (StatementKind::Write, "SELECT INTO".into())
        } else {
            (StatementKind::Read, "SELECT".into())
        };
    }
    if toks.first().is_some_and(|t| t.is_keyword("EXPLAIN")) {
        return explain(toks);
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

fn has_into(toks: &[Tok<'_>]) -> bool {
    toks.iter().any(|t| t.is_keyword("INTO"))
}

/// `EXPLAIN [ANALYZE] [VERBOSE] SELECT ...`: a read unless the SELECT has an `INTO`;
/// `EXPLAIN` of anything else is not a statement influxd knows.
fn explain(toks: &[Tok<'_>]) -> (StatementKind, String) {
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
    let kind = if has_into(toks) {
        StatementKind::Write
    } else {
        StatementKind::Read
    };
    (kind, name.into())
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
        Some(t @ (Tok::Word(_) | Tok::Quoted(_) | Tok::Param(_))) => t,
        Some(Tok::Regex) => return (None, start + 1),
        _ => return (None, start),
    };
    let mut segments = 1;
    let mut i = start + 1;
    while toks.get(i) == Some(&Tok::Dot) {
        i += 1;
        match toks.get(i) {
            Some(Tok::Word(_) | Tok::Quoted(_) | Tok::Param(_) | Tok::Regex) => i += 1,
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

#[cfg(test)]
mod tests {
    use crate::influxql::tests::{check, check_all, kinds, one, Case};
    use crate::influxql::{
        classify,
        StatementKind::{Local, Read, Write},
    };

    /// Every statement of the InfluxQL 1.x reference, in the order of its statement list,
    /// with the variants of its grammar.
    #[test]
    fn every_statement_of_the_reference() {
        let cases: &[Case] = &[
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
        check_all(cases);
    }

    #[test]
    fn keywords_are_case_insensitive() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("select * from cpu", Read, "SELECT", &[]),
            ("SeLeCt value InTo m FrOm cpu", Write, "SELECT INTO", &[]),
            ("create database x", Write, "CREATE DATABASE", &["x"]),
            ("drop Database X", Write, "DROP DATABASE", &["X"]),
            ("show measurements", Read, "SHOW MEASUREMENTS", &[]),
            ("Show Tag Values With Key = host", Read, "SHOW TAG VALUES", &[]),
            ("explain analyze select a from b", Read, "EXPLAIN ANALYZE", &[]),
            ("kill query 3", Local, "KILL QUERY", &[]),
            ("set password for u = 'p'", Write, "SET PASSWORD", &[]),
            ("alter retention policy rp on db default", Write, "ALTER RETENTION POLICY", &["db"]),
        ];
        check_all(cases);
    }

    #[test]
    fn subqueries() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("SELECT max(m) FROM (SELECT mean(value) AS m FROM cpu GROUP BY time(1m), host)", Read, "SELECT", &[]),
            (r#"SELECT max(m) INTO "db2"."rp"."m" FROM (SELECT mean(value) AS m FROM "db1"."rp"."cpu")"#, Write, "SELECT INTO", &["db2", "db1"]),
            ("SELECT * FROM (SELECT value INTO foo FROM cpu)", Write, "SELECT INTO", &[]),
            ("SELECT * FROM (SELECT * FROM (SELECT a FROM d1.r.m), d2.r.m), d3.r.m, (SELECT b FROM d4..m)", Read, "SELECT", &["d1", "d2", "d3", "d4"]),
            ("SELECT * FROM (SELECT a FROM /;'/), /--\"/", Read, "SELECT", &[]),
        ];
        check_all(cases);
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
    fn databases_are_extracted() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (r#"SELECT * INTO "x"."y"."z" FROM m"#, Write, "SELECT INTO", &["x"]),
            ("SELECT * INTO x.y.z FROM m", Write, "SELECT INTO", &["x"]),
            ("SELECT * INTO x..z FROM m", Write, "SELECT INTO", &["x"]),
            ("SELECT * INTO y.z FROM m", Write, "SELECT INTO", &[]),
            ("SELECT * INTO z FROM m", Write, "SELECT INTO", &[]),
            (r#"SELECT * INTO "_gateway"."autogen"."applied" FROM m"#, Write, "SELECT INTO", &["_gateway"]),
            (r#"SELECT * INTO"_gateway".autogen.applied FROM m"#, Write, "SELECT INTO", &["_gateway"]),
            ("DROP DATABASE _gateway", Write, "DROP DATABASE", &["_gateway"]),
            (r#"DROP RETENTION POLICY autogen ON "_gateway""#, Write, "DROP RETENTION POLICY", &["_gateway"]),
            ("SELECT * FROM a.b.c, d.e.f, g.h", Read, "SELECT", &["a", "d"]),
            ("SELECT * FROM a.b.c, a.b.d", Read, "SELECT", &["a"]),
            ("DROP MEASUREMENT cpu", Write, "DROP MEASUREMENT", &[]),
            (r#"KILL QUERY 1 ON "db""#, Local, "KILL QUERY", &[]),
        ];
        check_all(cases);
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
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("INSERT cpu value=1", Write, "INSERT", &[]),
            ("CREATE TABLE x", Write, "CREATE", &[]),
            ("SHOW TABLES", Write, "SHOW", &[]),
            ("SHOW TAG KEY", Write, "SHOW", &[]),
            ("EXPLAIN SHOW DATABASES", Write, "EXPLAIN", &[]),
            ("KILL 3", Write, "KILL", &[]),
            ("* garbage", Write, "", &[]),
            ("42", Write, "", &[]),
            // EXPLAIN of a SELECT ... INTO does not write in influxd 1.6, but nothing is lost
            // by sending it through the log.
            ("EXPLAIN SELECT a INTO b FROM c", Write, "EXPLAIN", &[]),
        ];
        check_all(cases);
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
}
