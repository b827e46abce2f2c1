//! Authentication and authorization of writes and state-changing queries, when enabled.
//!
//! The users are influxd's own (created with CREATE USER through the gateway, so replicated
//! like everything else). A write is applied by the applier with the gateway's admin account,
//! so influxd cannot check the client's privileges itself: the gateway does it here, before
//! anything is proposed, by asking its local influxd. Reads are passed through with the
//! client's credentials and checked by influxd as usual.
//!
//! Verdicts are cached briefly (keyed by user and a hash of the password) so that a busy
//! writer costs influxd one check every few seconds, not one per batch. The cache is bounded
//! in entries as well as in age: distinct credentials cannot grow it without limit.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use base64::Engine as _;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{HeaderMap, StatusCode};
use moka::sync::Cache;
use snapshotless::Influxd;

const CACHE_FOR: Duration = Duration::from_secs(5);
const CACHE_ENTRIES: u64 = 10_000;

/// Why a request was not allowed, as influxd would say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing, unreadable or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the privilege (403).
    #[error("{0}")]
    Forbidden(String),
    /// influxd, which holds the users, cannot answer (503).
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn unparsable() -> AuthError {
    AuthError::Unauthorized("unable to parse authentication credentials".into())
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// Never prints the password, should credentials ever reach a log line.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What a request needs to be allowed to do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Need<'a> {
    Write(&'a str),
    /// State-changing statements: influxd requires an admin for nearly all of them.
    Admin,
    /// The cluster's membership (`/admin/members`).
    Membership,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Account {
    admin: bool,
    /// Databases with WRITE or ALL privileges.
    writable: Vec<String>,
}

/// A user and a hash of the password they presented.
type CacheKey = (String, u64);
type Verdict = Result<Account, AuthError>;

pub struct Auth {
    enabled: bool,
    /// The local influxd, with the gateway's admin credentials.
    influxd: Influxd,
    /// The same influxd, reached without credentials, to authenticate clients with theirs.
    url: String,
    cache: Cache<CacheKey, Verdict>,
}

impl Auth {
    pub fn new(enabled: bool, influxd: Influxd, url: &str) -> Auth {
        Auth {
            enabled,
            influxd,
            url: url.to_owned(),
            cache: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(CACHE_FOR)
                .build(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Checks that the request's credentials allow `need`; a no-op when auth is disabled.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        params: &HashMap<String, String>,
        need: Need<'_>,
    ) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        let creds = credentials(headers, params)?.ok_or_else(unparsable)?;
        let account = self.account(&creds).await?;
        let allowed = account.admin
            || match need {
                Need::Write(db) => account.writable.iter().any(|d| d == db),
                Need::Admin | Need::Membership => false,
            };
        if allowed {
            return Ok(());
        }
        Err(AuthError::Forbidden(match need {
                Need::Write(db) => {
                    format!("{:?} user is not authorized to write to database {db:?}", creds.user)
                }
                Need::Admin => format!(
                    "error authorizing query: {} not authorized to execute state-changing statements through the gateway, requires admin privilege",
                    creds.user
                ),
                Need::Membership => format!(
                    "{} not authorized to use the admin API, requires admin privilege",
                    creds.user
                ),
        }))
    }

    async fn account(&self, creds: &Credentials) -> Result<Account, AuthError> {
        let mut h = DefaultHasher::new();
        creds.password.hash(&mut h);
        let key = (creds.user.clone(), h.finish());
        if let Some(verdict) = self.cache.get(&key) {
            return verdict;
        }
        let verdict = self.look_up(creds).await;
        // Only verdicts influxd actually gave are cached; an unreachable influxd is not one.
        if !matches!(verdict, Err(AuthError::Unavailable(_))) {
            self.cache.insert(key, verdict.clone());
        }
        verdict
    }

    async fn look_up(&self, creds: &Credentials) -> Result<Account, AuthError> {
        // Authenticate with the client's own credentials: influxd knows the password.
        let as_client = Influxd::new(
            &self.url,
            Duration::from_secs(5),
            Some((&creds.user, &creds.password)),
        );
        let r = as_client
            .query("SHOW DATABASES", "", "", "")
            .await
            .map_err(unavailable)?;
        match r.status.as_u16() {
            200 => {}
            401 | 403 => return Err(AuthError::Unauthorized("authorization failed".into())),
            _ => return Err(unavailable(format_args!("{} {}", r.status, r.error_text()))),
        }
        // Its privileges, as the admin sees them.
        let users = self.admin_query("SHOW USERS").await?;
        let admin = rows(&users).iter().any(|row| {
            row.first().and_then(|u| u.as_str()) == Some(creds.user.as_str())
                && row.get(1).and_then(|a| a.as_bool()) == Some(true)
        });
        let grants = self
            .admin_query(&format!(
                "SHOW GRANTS FOR \"{}\"",
                creds.user.replace('"', "\\\"")
            ))
            .await?;
        let writable = rows(&grants)
            .iter()
            .filter(|row| {
                matches!(
                    row.get(1).and_then(|p| p.as_str()),
                    Some("WRITE" | "ALL PRIVILEGES")
                )
            })
            .filter_map(|row| row.first().and_then(|d| d.as_str()).map(str::to_owned))
            .collect();
        Ok(Account { admin, writable })
    }

    async fn admin_query(&self, q: &str) -> Result<serde_json::Value, AuthError> {
        let r = self
            .influxd
            .query(q, "", "", "")
            .await
            .map_err(unavailable)?;
        if !r.status.is_success() {
            return Err(unavailable(format!(
                "the gateway's influxd account cannot run {q:?}: {}",
                r.error_text()
            )));
        }
        serde_json::from_slice(&r.body).map_err(unavailable)
    }
}

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    AuthError::Unavailable(format!(
        "cannot verify credentials: local influxd unavailable: {e}"
    ))
}

fn rows(v: &serde_json::Value) -> Vec<Vec<serde_json::Value>> {
    v["results"][0]["series"][0]["values"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r.as_array().cloned()).collect())
        .unwrap_or_default()
}

/// Credentials as influxd 1.x accepts them: `u`/`p` parameters, HTTP Basic, or
/// `Authorization: Token user:password` (the 1.8 form of the 2.x API).
pub fn credentials(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Option<Credentials>, AuthError> {
    if let (Some(u), Some(p)) = (params.get("u"), params.get("p")) {
        return Ok(Some(Credentials {
            user: u.clone(),
            password: p.clone(),
        }));
    }
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = unparsable;
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    let pair = match scheme {
        "Basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| bad())?;
            String::from_utf8(decoded).map_err(|_| bad())?
        }
        "Token" => rest.trim().to_owned(),
        "Bearer" => {
            return Err(AuthError::Unauthorized(
                "bearer (JWT) tokens are not supported by the gateway; use Basic or Token user:password".into(),
            ))
        }
        _ => return Err(bad()),
    };
    let (user, password) = pair.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    }))
}

/// The `Authorization` value to pass on to influxd with a read. influxd before 1.8 knows no
/// `Token` scheme and refuses it ("unable to parse authentication credentials"), so a client
/// whose `Token user:password` the gateway accepts for writes could not read: the same pair
/// goes on as HTTP Basic. Any other value goes on unchanged, for influxd to judge.
pub fn for_influxd(value: &HeaderValue) -> HeaderValue {
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Token "))
        .map(str::trim)
        .filter(|pair| pair.contains(':'));
    match token {
        Some(pair) => {
            let basic = base64::engine::general_purpose::STANDARD.encode(pair);
            HeaderValue::from_str(&format!("Basic {basic}")).expect("base64 is a valid header")
        }
        None => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn the_verdict_cache_is_bounded_in_entries() {
        let influxd = Influxd::new("http://127.0.0.1:1", Duration::from_secs(1), None);
        let auth = Auth::new(true, influxd, "http://127.0.0.1:1");
        for i in 0..3 * CACHE_ENTRIES {
            let verdict = Err(AuthError::Unauthorized("authorization failed".into()));
            auth.cache.insert((format!("user{i}"), i), verdict);
        }
        auth.cache.run_pending_tasks();
        assert!(
            auth.cache.entry_count() <= CACHE_ENTRIES,
            "{} cached verdicts",
            auth.cache.entry_count()
        );
    }

    #[test]
    fn reads_every_form_of_credentials() {
        let none = HashMap::new();
        let basic = credentials(&headers("Basic dTpwOnc="), &none)
            .unwrap()
            .unwrap();
        assert_eq!((basic.user.as_str(), basic.password.as_str()), ("u", "p:w"));
        let token = credentials(&headers("Token u:p"), &none).unwrap().unwrap();
        assert_eq!((token.user.as_str(), token.password.as_str()), ("u", "p"));
        let params: HashMap<String, String> =
            [("u".into(), "x".into()), ("p".into(), "y".into())].into();
        let q = credentials(&HeaderMap::new(), &params).unwrap().unwrap();
        assert_eq!(q.user, "x");
        assert!(credentials(&HeaderMap::new(), &none).unwrap().is_none());
        assert_eq!(
            credentials(&headers("Basic !!!"), &none)
                .unwrap_err()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert!(credentials(&headers("Bearer abc"), &none)
            .unwrap_err()
            .to_string()
            .contains("JWT"));
    }

    #[test]
    fn a_token_goes_to_influxd_as_basic_with_the_same_pair() {
        let none = HashMap::new();
        let token = HeaderValue::from_static("Token u:p w:x");
        let passed = for_influxd(&token);
        let as_read = credentials(&headers(passed.to_str().unwrap()), &none)
            .unwrap()
            .unwrap();
        assert!(passed.to_str().unwrap().starts_with("Basic "));
        assert_eq!(
            (as_read.user.as_str(), as_read.password.as_str()),
            ("u", "p w:x")
        );
        for other in ["Basic dTpw", "Bearer abc", "Token nocolon", "Digest x"] {
            let value = HeaderValue::from_static(other);
            assert_eq!(for_influxd(&value), value, "{other}");
        }
    }
}
