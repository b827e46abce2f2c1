//! A small blocking HTTP client speaking the InfluxDB 1.x API, for influxd and the gateway alike.

use std::time::Duration;

/// The status, headers of interest and body of a response; non-2xx statuses are answers too.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
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
}

impl Http {
    /// `addr` is `host:port`.
    pub fn new(addr: &str) -> Http {
        Http {
            base: format!("http://{addr}"),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
            auth: None,
        }
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

    /// Sends a request; `Err` only when there is no HTTP answer at all (refused, reset, timeout).
    pub fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
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
            Err(e) => return Err(format!("{method} {path_and_query}: {e}")),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
            .collect();
        let body = resp.into_string().unwrap_or_default();
        Ok(Response {
            status,
            body,
            headers,
        })
    }

    pub fn get(&self, path_and_query: &str) -> Result<Response, String> {
        self.send("GET", path_and_query, &[], &[])
    }

    /// POST /write with line protocol.
    pub fn write(&self, query: &str, lines: &str) -> Result<Response, String> {
        self.send("POST", &format!("/write?{query}"), &[], lines.as_bytes())
    }

    /// POST /query with the statement form-encoded, as the influx CLI does.
    pub fn query(&self, db: &str, q: &str) -> Result<Response, String> {
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
    pub fn try_query(&self, db: &str, q: &str) -> Result<serde_json::Value, String> {
        let r = self
            .query(db, q)
            .map_err(|e| format!("query {q:?} on {}: {e}", self.base))?;
        if r.status != 200 {
            return Err(format!(
                "query {q:?} on {}: {}: {}",
                self.base, r.status, r.body
            ));
        }
        let v = r.json();
        if let Some(err) = v["results"][0]["error"].as_str() {
            return Err(format!("query {q:?} on {} failed: {err}", self.base));
        }
        Ok(v)
    }

    /// All rows of `SELECT * FROM <measurement>` as JSON arrays, in time order.
    pub fn rows(&self, db: &str, measurement: &str) -> Vec<serde_json::Value> {
        self.try_rows(db, measurement)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Http::rows`], with a failure (e.g. the database not created yet) as an `Err`.
    pub fn try_rows(&self, db: &str, measurement: &str) -> Result<Vec<serde_json::Value>, String> {
        let v = self.try_query(db, &format!("SELECT * FROM \"{measurement}\""))?;
        Ok(v["results"][0]["series"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
