//! Users and their privileges, which `influxd restore -portable` leaves out: re-created from
//! the copy's meta file, with their admin flag and every grant.
//!
//! Their passwords cannot be carried. influxd keeps a bcrypt hash, and the backup's meta file
//! holds it, but a running influxd 1.6 takes a password only in plain text (CREATE USER, SET
//! PASSWORD), and its portable restore imports databases only. Writing the hash into its meta
//! store takes influxd stopped (the legacy `influxd restore -metadir`), which a gateway beside
//! an influxd it does not run cannot do. So a user gets the password the caller knows for it
//! ([`Passwords`]: the gateway's own admin account, whatever it kept of the log's user
//! statements); any other user is created *locked*, with a random password nobody knows. It
//! exists with its admin flag and grants, so what follows in the log (GRANT, SET PASSWORD,
//! DROP USER) applies here as it did on the source; it cannot log in on this node until its
//! password is set again. [`super::Restored`] names the locked users.

use std::collections::HashMap;
use std::fmt;

use rand::distributions::{Alphanumeric, DistString};

use super::meta::User;
use super::query::{exec, rows};
use super::SeedError;
use crate::influxd::{quote_ident, quote_string, Influxd};

/// The passwords a restore can give users, by user name. Its `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Passwords(HashMap<String, String>);

impl Passwords {
    pub fn new() -> Passwords {
        Passwords::default()
    }

    pub fn insert(&mut self, user: impl Into<String>, password: impl Into<String>) {
        self.0.insert(user.into(), password.into());
    }

    pub fn get(&self, user: &str) -> Option<&str> {
        self.0.get(user).map(String::as_str)
    }
}

impl<U: Into<String>, P: Into<String>> FromIterator<(U, P)> for Passwords {
    fn from_iter<I: IntoIterator<Item = (U, P)>>(iter: I) -> Self {
        Passwords(
            iter.into_iter()
                .map(|(u, p)| (u.into(), p.into()))
                .collect(),
        )
    }
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Who was restored, and who of them is locked.
pub(crate) struct UsersRestored {
    pub users: Vec<String>,
    pub locked: Vec<String>,
}

/// Creates the copy's users on influxd, or updates those it has. A user it already has (the
/// applier's own admin account, created before the restore) keeps its password unless the
/// caller gives one, and is never demoted from admin: the restore may be running as that user.
pub(crate) async fn restore(
    influxd: &Influxd,
    users: &[User],
    passwords: &Passwords,
) -> Result<UsersRestored, SeedError> {
    let existing = admins(influxd).await?;
    let mut done = UsersRestored {
        users: Vec::new(),
        locked: Vec::new(),
    };
    for u in users {
        let name = quote_ident(&u.name);
        let known = passwords.get(&u.name);
        match (existing.get(&u.name), known) {
            (Some(_), Some(p)) => {
                let q = format!("SET PASSWORD FOR {name} = {}", quote_string(p));
                exec(influxd, &q, "", &format!("SET PASSWORD FOR {name}")).await?;
            }
            (Some(_), None) => {}
            (None, _) => {
                let password = match known {
                    Some(p) => p.to_owned(),
                    None => {
                        done.locked.push(u.name.clone());
                        Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
                    }
                };
                let all = if u.admin { " WITH ALL PRIVILEGES" } else { "" };
                let q = format!(
                    "CREATE USER {name} WITH PASSWORD {}{all}",
                    quote_string(&password)
                );
                exec(influxd, &q, "", &format!("CREATE USER {name}")).await?;
            }
        }
        if u.admin && existing.get(&u.name) == Some(&false) {
            let q = format!("GRANT ALL PRIVILEGES TO {name}");
            exec(influxd, &q, "", &q).await?;
        }
        for p in &u.privileges {
            let q = grant(&name, &p.database, p.privilege)?;
            exec(influxd, &q, "", &q).await?;
        }
        done.users.push(u.name.clone());
    }
    Ok(done)
}

/// The statement that gives `user` exactly `privilege` on `db`. Privilege 0 is a grant that
/// was revoked: influxd keeps it and shows it as NO PRIVILEGES, and so does the restored one.
fn grant(user: &str, db: &str, privilege: i32) -> Result<String, SeedError> {
    let db = quote_ident(db);
    Ok(match privilege {
        0 => format!("REVOKE ALL PRIVILEGES ON {db} FROM {user}"),
        1 => format!("GRANT READ ON {db} TO {user}"),
        2 => format!("GRANT WRITE ON {db} TO {user}"),
        3 => format!("GRANT ALL PRIVILEGES ON {db} TO {user}"),
        p => return Err(SeedError::Backup(format!("unknown privilege {p} on {db}"))),
    })
}

/// How influxd shows a privilege in SHOW GRANTS.
pub(crate) fn shown(privilege: i32) -> &'static str {
    match privilege {
        1 => "READ",
        2 => "WRITE",
        3 => "ALL PRIVILEGES",
        _ => "NO PRIVILEGES",
    }
}

/// influxd's users and whether each is an admin.
pub(crate) async fn admins(influxd: &Influxd) -> Result<HashMap<String, bool>, SeedError> {
    Ok(rows(influxd, "SHOW USERS")
        .await?
        .iter()
        .filter_map(|r| Some((r.first()?.as_str()?.to_owned(), r.get(1)?.as_bool()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_debug() {
        let p: Passwords = [("reader", "s3cret")].into_iter().collect();
        assert_eq!(p.get("reader"), Some("s3cret"));
        assert_eq!(format!("{p:?}"), r#"{"reader"}"#);
    }

    #[test]
    fn each_privilege_has_its_statement() {
        let u = quote_ident("r");
        assert_eq!(grant(&u, "db", 1).unwrap(), r#"GRANT READ ON "db" TO "r""#);
        assert_eq!(grant(&u, "db", 2).unwrap(), r#"GRANT WRITE ON "db" TO "r""#);
        assert_eq!(
            grant(&u, "d\"b", 3).unwrap(),
            r#"GRANT ALL PRIVILEGES ON "d\"b" TO "r""#
        );
        assert_eq!(
            grant(&u, "db", 0).unwrap(),
            r#"REVOKE ALL PRIVILEGES ON "db" FROM "r""#
        );
        assert!(grant(&u, "db", 9).is_err());
    }
}
