//! A small blocking HTTP client speaking the InfluxDB 1.x API, for influxd and the gateway alike.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::tls::{self, TlsError};

/// No answer, or not the answer a helper insists on. A non-2xx status alone is not an error
/// of [`Http::send`]: it is an answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing came back: refused, reset, timed out.
    #[error("{method} {path}: {source}")]
    NoAnswer {
        method: String,
        path: String,
        #[source]
        source: Box<ureq::Transport>,
    },
    /// An answer cut short.
    #[error("{method} {path}: reading the answer: {source}")]
    Body {
        method: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A query that could not be sent or was not answered.
    #[error("query {query:?} on {server}: {source}")]
    QueryUnanswered {
        query: String,
        server: String,
        #[source]
        source: Box<HttpError>,
    },
    /// A query answered with another status than 200.
    #[error("query {query:?} on {server}: {status}: {body}")]
    QueryStatus {
        query: String,
        server: String,
        status: u16,
        body: String,
    },
    /// A query answered with 200 and an error in its result.
    #[error("query {query:?} on {server} failed: {error}")]
    QueryFailed {
        query: String,
        server: String,
        error: String,
    },
}

/// The status, headers of interest and body of a response; non-2xx statuses are answers too.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The body as text (invalid UTF-8 replaced); `raw` has its bytes.
    pub body: String,
    pub raw: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {:?}", self.body))
    }

    /// The `error` field of an influx-style error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Clone)]
pub struct Http {
    base: String,
    agent: ureq::Agent,
    /// Basic credentials sent with every request, if set.
    auth: Option<String>,
    /// For https: trusts only the given CA. Kept so that other timeouts keep the same trust.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Http {
    /// `addr` is `host:port`, over plain HTTP. A request may take 30 s.
    pub fn new(addr: &str) -> Http {
        Self::build(format!("http://{addr}"), None)
    }

    /// `addr` is `host:port` of an HTTPS endpoint whose certificate must chain to the CA in
    /// the PEM file `ca`, the only root trusted, and name `host`. A request may take 30 s.
    pub fn https(addr: &str, ca: &Path) -> Result<Http, TlsError> {
        Ok(Self::build(
            format!("https://{addr}"),
            Some(tls::client_config(ca, None)?),
        ))
    }

    /// `base` is `http://host:port`, or `https://host:port` with the CA to trust: the form a
    /// test that runs over either takes.
    pub fn url(base: &str, ca: Option<&Path>) -> Result<Http, TlsError> {
        let invalid = |reason: &str| TlsError::Url {
            url: base.to_owned(),
            reason: reason.to_owned(),
        };
        match (base.split_once("://"), ca) {
            (Some(("http", addr)), None) => Ok(Self::new(addr.trim_end_matches('/'))),
            (Some(("https", addr)), Some(ca)) => Self::https(addr.trim_end_matches('/'), ca),
            (Some(("http", _)), Some(_)) => Err(invalid("a CA is for https")),
            (Some(("https", _)), None) => Err(invalid("https needs the CA to trust")),
            _ => Err(invalid("not http://HOST:PORT or https://HOST:PORT")),
        }
    }

    fn build(base: String, tls: Option<Arc<rustls::ClientConfig>>) -> Http {
        Http {
            base,
            agent: agent_builder(tls.as_ref())
                .timeout(Duration::from_secs(30))
                .build(),
            auth: None,
            tls,
        }
    }

    /// The same endpoint, with other limits on connecting and on a whole request.
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> Http {
        self.agent = agent_builder(self.tls.as_ref())
            .timeout_connect(connect)
            .timeout(request)
            .build();
        self
    }

    /// The same endpoint, sending HTTP Basic credentials.
    pub fn with_auth(mut self, user: &str, password: &str) -> Http {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.auth = Some(format!("Basic {token}"));
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; `Err` only when there is no whole HTTP answer (refused, reset, timeout).
    pub fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path_and_query));
        if let Some(auth) = &self.auth {
            req = req.set("Authorization", auth);
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = if body.is_empty() && (method == "GET" || method == "HEAD") {
            req.call()
        } else {
            req.send_bytes(body)
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => {
                return Err(HttpError::NoAnswer {
                    method: method.to_owned(),
                    path: path_and_query.to_owned(),
                    source: Box::new(t),
                })
            }
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
            .collect();
        // Read whole, whatever its size (a replica's final contents can be large).
        let mut body = Vec::new();
        resp.into_reader()
            .read_to_end(&mut body)
            .map_err(|source| HttpError::Body {
                method: method.to_owned(),
                path: path_and_query.to_owned(),
                source,
            })?;
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            raw: body,
            headers,
        })
    }

    pub fn get(&self, path_and_query: &str) -> Result<Response, HttpError> {
        self.send("GET", path_and_query, &[], &[])
    }

    /// POST /write with line protocol.
    pub fn write(&self, query: &str, lines: &str) -> Result<Response, HttpError> {
        self.write_bytes(query, &[], lines.as_bytes())
    }

    /// POST /write with any body and headers (gzip, other credentials).
    pub fn write_bytes(
        &self,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        self.send("POST", &format!("/write?{query}"), headers, body)
    }

    /// A write that must be acknowledged (204).
    pub fn write_ok(&self, query: &str, lines: &str) {
        let r = self.write(query, lines).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 204, "write to {}?{query}: {}", self.base, r.body);
    }

    /// POST /query with the statement form-encoded, as the influx CLI does.
    pub fn query(&self, db: &str, q: &str) -> Result<Response, HttpError> {
        let body = format!("q={}", encode(q));
        self.send(
            "POST",
            &format!("/query?db={}", encode(db)),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    /// Runs a query that must succeed and returns its JSON.
    pub fn query_ok(&self, db: &str, q: &str) -> serde_json::Value {
        self.try_query(db, q).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs a query; any failure (transport, status, or an error in the result) is an `Err`
    /// naming the query and the server, for waits that poll a replica still catching up.
    pub fn try_query(&self, db: &str, q: &str) -> Result<serde_json::Value, HttpError> {
        let r = self.query(db, q).map_err(|e| HttpError::QueryUnanswered {
            query: q.to_owned(),
            server: self.base.clone(),
            source: Box::new(e),
        })?;
        if r.status != 200 {
            return Err(HttpError::QueryStatus {
                query: q.to_owned(),
                server: self.base.clone(),
                status: r.status,
                body: r.body,
            });
        }
        let v = r.json();
        if let Some(err) = v["results"][0]["error"].as_str() {
            return Err(HttpError::QueryFailed {
                query: q.to_owned(),
                server: self.base.clone(),
                error: err.to_owned(),
            });
        }
        Ok(v)
    }

    /// All rows of `SELECT * FROM <measurement>` as JSON arrays, in time order.
    pub fn rows(&self, db: &str, measurement: &str) -> Vec<serde_json::Value> {
        self.try_rows(db, measurement)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Http::rows`], with a failure (e.g. the database not created yet) as an `Err`.
    pub fn try_rows(
        &self,
        db: &str,
        measurement: &str,
    ) -> Result<Vec<serde_json::Value>, HttpError> {
        let v = self.try_query(db, &format!("SELECT * FROM \"{measurement}\""))?;
        Ok(v["results"][0]["series"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

fn agent_builder(tls: Option<&Arc<rustls::ClientConfig>>) -> ureq::AgentBuilder {
    let builder = ureq::AgentBuilder::new();
    match tls {
        Some(config) => builder.tls_config(config.clone()),
        None => builder,
    }
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
