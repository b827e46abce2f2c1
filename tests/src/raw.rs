//! Raw TCP clients of the API, for what an HTTP library will not do: hold a connection idle,
//! trickle a request a byte at a time, stall a body, send an oversized head, or connect from
//! a chosen local address.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Connects to `addr` (`host:port`) within 5 seconds.
pub fn connect(addr: &str) -> TcpStream {
    let to: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s
}

/// Connects to `addr` from the local address `from` (any of 127.0.0.0/8 on loopback).
pub fn connect_from(from: IpAddr, addr: &str) -> TcpStream {
    let to: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| panic!("binding to {from}: {e}"));
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {addr} from {from}: {e}"));
    let s: TcpStream = socket.into();
    s.set_nodelay(true).unwrap();
    s
}

/// An HTTP/1.1 request's bytes: `head` is the request line's method and target; a
/// `Content-Length` is added for a body.
pub fn request(head: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{head} HTTP/1.1\r\nHost: gateway\r\n");
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    if !body.is_empty() {
        out += &format!("Content-Length: {}\r\n", body.len());
    }
    out += "\r\n";
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// An answer as read off the wire.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` field of an influx-style error body.
    pub fn error(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body));
        v["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends `req` and reads the answer, within `timeout`.
pub fn exchange(s: &mut TcpStream, req: &[u8], timeout: Duration) -> io::Result<Answer> {
    s.set_write_timeout(Some(timeout))?;
    s.write_all(req)?;
    read_answer(s, timeout)
}

/// Reads one answer (a `Content-Length` body, or up to the end of the stream), within
/// `timeout`; `WouldBlock` or `TimedOut` if none came by then.
pub fn read_answer(s: &mut TcpStream, timeout: Duration) -> io::Result<Answer> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if read_some(s, &mut buf, deadline)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the connection closed before a whole head: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "chunked answers are not read here: {head}"
    );
    let mut body = buf.split_off(head_end);
    match length {
        Some(n) => {
            while body.len() < n {
                if read_some(s, &mut body, deadline)? == 0 {
                    break;
                }
            }
            body.truncate(n);
        }
        None if status == 204 || status == 304 => body.clear(),
        None => while read_some(s, &mut body, deadline)? > 0 {},
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Waits until the server closes the connection (end of stream or reset), reading and
/// discarding whatever it sends first; how long that took, or `Err` after `timeout`.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut sink = Vec::new();
    loop {
        match read_some(s, &mut sink, deadline) {
            Ok(0) => return Ok(start.elapsed()),
            Ok(_) => sink.clear(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("still open after {timeout:?}"))
            }
            Err(_) => return Ok(start.elapsed()),
        }
    }
}

fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
    }
    s.set_read_timeout(Some(left))?;
    let mut chunk = [0u8; 16 << 10];
    let n = s.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Raises this process's soft limit on open files to its hard limit, for tests that hold
/// thousands of connections; the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
    hard
}
