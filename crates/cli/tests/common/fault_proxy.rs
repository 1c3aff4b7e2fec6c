//! A fault-injecting HTTP proxy, put between reprise and a storage
//! emulator. Each request is read whole, then, with a seeded probability,
//! answered with a fault instead of (or after) being forwarded:
//!
//! | fault | what the client sees | forwarded? |
//! |---|---|---|
//! | `Http500` | `500 Internal Server Error` | no |
//! | `Http503` | `503 Service Unavailable` (S3 `SlowDown`, Azure `ServerBusy`) | no |
//! | `Throttle429` | `429 Too Many Requests` with `Retry-After: 1` | no |
//! | `ResetBefore` | the connection closed with no answer | no |
//! | `ResetAfter` | the connection closed with no answer, **after** the storage executed the request | yes |
//! | `Timeout` | no answer until the client gives up (its timeout is shortened for tests) | no |
//! | `SlowBody` | the real answer, its body trickled in small pieces | yes |
//! | `Truncated` | the real status and `Content-Length`, then half the body and a closed connection | yes |
//!
//! Which requests fail is drawn from a seeded generator; the kinds take
//! turns. Every fault is counted; the test reports the counts and checks
//! that each kind happened. One request per connection (`Connection: close` both
//! ways) keeps the proxy small; clients reconnect for every request.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Http500,
    Http503,
    Throttle429,
    ResetBefore,
    ResetAfter,
    Timeout,
    SlowBody,
    Truncated,
}

impl Fault {
    pub const ALL: [Fault; 8] = [Fault::Http500, Fault::Http503, Fault::Throttle429, Fault::ResetBefore, Fault::ResetAfter, Fault::Timeout, Fault::SlowBody, Fault::Truncated];
}

pub struct FaultProxy {
    pub port: u16,
    upstream: u16,
    /// Faults are injected only while this is set.
    pub enabled: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 8]>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

struct Shared {
    upstream: u16,
    enabled: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 8]>,
    requests: Arc<AtomicU64>,
    injected: AtomicU64,
    rng: Mutex<u64>,
    /// Probability of a fault per request, in percent.
    rate: u64,
    /// How long `Timeout` holds a request (longer than the client's timeout).
    hold: Duration,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: u16, rate_percent: u64, seed: u64, hold: Duration) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let enabled = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicU64; 8]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            upstream,
            enabled: Arc::clone(&enabled),
            counts: Arc::clone(&counts),
            requests: Arc::clone(&requests),
            injected: AtomicU64::new(0),
            rng: Mutex::new(seed | 1),
            rate: rate_percent,
            hold,
        });
        let stop2 = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(&shared, conn);
                });
            }
        });
        FaultProxy { port, upstream, enabled, counts, requests, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn count(&self, f: Fault) -> u64 {
        self.counts[f as usize].load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `kind=count` for every fault, for the test's report.
    pub fn report(&self) -> String {
        let mut s = format!("{} requests;", self.requests());
        for f in Fault::ALL {
            s.push_str(&format!(" {f:?}={}", self.count(f)));
        }
        s
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn next(shared: &Shared) -> u64 {
    let mut s = shared.rng.lock().unwrap();
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Reads one HTTP/1.1 message head and its `Content-Length` body.
fn read_message(s: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut byte)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut byte)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Ok(Some((head, body)))
}

/// The head with `Connection: close` instead of any connection header.
fn close_head(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn forward(shared: &Shared, head: &str, body: &[u8]) -> std::io::Result<(String, Vec<u8>)> {
    let mut up = TcpStream::connect(("127.0.0.1", shared.upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    up.write_all(close_head(head).as_bytes())?;
    up.write_all(body)?;
    // The response: head, then the body up to Content-Length or the close.
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
    Ok((String::from_utf8_lossy(&resp[..head_end]).into_owned(), resp[head_end..].to_vec()))
}

fn status(s: &mut TcpStream, code: u16, reason: &str, extra: &str, body: &str) -> std::io::Result<()> {
    let msg = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}", body.len());
    s.write_all(msg.as_bytes())
}

fn serve(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let Some((head, body)) = read_message(&mut client)? else { return Ok(()) };
    shared.requests.fetch_add(1, Ordering::Relaxed);
    // Which requests fail is random (seeded); the kinds take turns, so that
    // every kind occurs once enough faults have been injected.
    let fault = if shared.enabled.load(Ordering::Relaxed) && next(shared) % 100 < shared.rate {
        let n = shared.injected.fetch_add(1, Ordering::Relaxed);
        Some(Fault::ALL[(n % 8) as usize])
    } else {
        None
    };
    if let Some(f) = fault {
        shared.counts[f as usize].fetch_add(1, Ordering::Relaxed);
    }
    let xml = |code: &str| format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test's fault proxy</Message></Error>");
    match fault {
        Some(Fault::Http500) => return status(&mut client, 500, "Internal Server Error", "", &xml("InternalError")),
        Some(Fault::Http503) => return status(&mut client, 503, "Service Unavailable", "", &xml("SlowDown")),
        Some(Fault::Throttle429) => return status(&mut client, 429, "Too Many Requests", "Retry-After: 1\r\n", &xml("TooManyRequests")),
        Some(Fault::ResetBefore) => return client.shutdown(Shutdown::Both),
        Some(Fault::Timeout) => {
            std::thread::sleep(shared.hold);
            return client.shutdown(Shutdown::Both);
        }
        _ => {}
    }
    let (rhead, rbody) = match forward(shared, &head, &body) {
        Ok(r) => r,
        Err(_) => return client.shutdown(Shutdown::Both),
    };
    match fault {
        Some(Fault::ResetAfter) => client.shutdown(Shutdown::Both),
        Some(Fault::Truncated) if rbody.len() >= 2 => {
            client.write_all(close_head(&rhead).as_bytes())?;
            client.write_all(&rbody[..rbody.len() / 2])?;
            client.shutdown(Shutdown::Both)
        }
        Some(Fault::SlowBody) => {
            client.write_all(close_head(&rhead).as_bytes())?;
            for piece in rbody.chunks(rbody.len().div_ceil(8).max(1)) {
                client.write_all(piece)?;
                client.flush()?;
                std::thread::sleep(Duration::from_millis(40));
            }
            Ok(())
        }
        _ => {
            client.write_all(close_head(&rhead).as_bytes())?;
            client.write_all(&rbody)
        }
    }
}
