//! A fault-injecting HTTP proxy, put between reprise and a storage
//! emulator. Each request is read whole, then, with a seeded probability,
//! answered with a fault instead of (or after) being forwarded:
//!
//! | fault | what the client sees | forwarded? | applies to |
//! |---|---|---|---|
//! | `Http500` | `500 Internal Server Error` | no | any request |
//! | `Http503` | `503 Service Unavailable` (S3 `SlowDown`, Azure `ServerBusy`) | no | any request |
//! | `Throttle429` | `429 Too Many Requests` with `Retry-After: 1` | no | any request |
//! | `ResetBefore` | the connection closed with no answer | no | any request |
//! | `ResetAfter` | the connection closed with no answer, **after** the storage executed the request | yes | any request the storage answered |
//! | `Timeout` | no answer until the client gives up (its timeout is shortened for tests) | no | any request |
//! | `SlowBody` | the real answer, its body trickled in small pieces | yes | a `GET` whose answer has a body |
//! | `Truncated` | the real status and `Content-Length`, then half the body and a closed connection | yes | a `GET` whose answer has a body |
//!
//! Which requests fail is drawn from a seeded generator; the kinds take
//! turns, separately for `GET`s and for other requests (a `PUT` is answered
//! with an empty body: there is nothing to truncate or trickle). A fault is
//! counted only when it was applied: a `Truncated` or `SlowBody` turn that
//! meets an answer without a body passes the answer through unchanged,
//! uncounted, and stays the next `GET` fault in turn. Each applied fault is
//! recorded with the request it hit and the *phase* the test was in
//! ([`FaultProxy::set_phase`]: "backup", "restore"), so that a test can
//! prove that each kind hit the operation it claims to survive. Every
//! request is recorded too (method, target, headers), so that a test can
//! check on the wire what the client sent (every create carries
//! `If-None-Match: *`).
//!
//! The proxy also counts the requests in flight (received, not yet
//! answered) and keeps the highest count ([`FaultProxy::max_in_flight`]);
//! [`FaultProxy::set_latency`] holds every request that long before it is
//! forwarded, so that a client's concurrent requests overlap on the wire.
//!
//! One request per connection (`Connection: close` both ways) keeps the
//! proxy small; clients reconnect for every request.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// The kinds that change an answer's body: they apply to `GET`s only.
    pub const BODY: [Fault; 2] = [Fault::SlowBody, Fault::Truncated];

    /// Whether the kind is applied before the request reaches the storage.
    fn before_forwarding(self) -> bool {
        matches!(self, Fault::Http500 | Fault::Http503 | Fault::Throttle429 | Fault::ResetBefore | Fault::Timeout)
    }
}

/// One request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub phase: String,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
    /// The storage's status, when the request was forwarded.
    pub upstream_status: Option<u16>,
    /// Length of the storage's answer body, when forwarded.
    pub body_len: Option<usize>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The names of the query parameters.
    pub fn query_keys(&self) -> Vec<&str> {
        self.target.split_once('?').map(|(_, q)| q.split('&').map(|p| p.split('=').next().unwrap_or_default()).filter(|k| !k.is_empty()).collect()).unwrap_or_default()
    }
}

pub struct FaultProxy {
    pub port: u16,
    upstream: u16,
    /// Faults are injected only while this is set.
    pub enabled: Arc<AtomicBool>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

struct Shared {
    upstream: u16,
    enabled: Arc<AtomicBool>,
    rng: Mutex<u64>,
    /// Probability of a fault per request, in percent.
    rate: u64,
    /// How long `Timeout` holds a request (longer than the client's timeout).
    hold: Duration,
    /// Added to every request, in milliseconds.
    latency_ms: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    state: Mutex<State>,
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct State {
    phase: String,
    /// Position in the turn of kinds: `GET`s, then everything else.
    turn_get: usize,
    turn_other: usize,
    seen: Vec<Seen>,
}

impl FaultProxy {
    /// Listens on a free loopback port (port 0, read back) and forwards to
    /// `upstream`.
    pub fn start(upstream: u16, rate_percent: u64, seed: u64, hold: Duration) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let enabled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            upstream,
            enabled: Arc::clone(&enabled),
            rng: Mutex::new(seed | 1),
            rate: rate_percent,
            hold,
            latency_ms: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        });
        let stop2 = Arc::clone(&stop);
        let shared2 = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&shared2);
                std::thread::spawn(move || {
                    let _ = serve(&shared, conn);
                });
            }
        });
        FaultProxy { port, upstream, enabled, shared, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Holds every request this long before forwarding it.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.latency_ms.store(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Labels the requests that follow (and the faults they get).
    pub fn set_phase(&self, phase: &str) {
        phase.clone_into(&mut self.shared.state.lock().unwrap().phase);
    }

    /// How many faults of this kind were applied.
    pub fn count(&self, f: Fault) -> u64 {
        self.shared.state.lock().unwrap().seen.iter().filter(|s| s.fault == Some(f)).count() as u64
    }

    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.shared.state.lock().unwrap().seen.len() as u64
    }

    /// Every request received so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().unwrap().seen.clone()
    }

    /// The requests that got a fault.
    pub fn hits(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.fault.is_some()).collect()
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

/// Method, target and headers of a request head.
fn parse_head(head: &str) -> (String, String, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    (method, target, headers)
}

/// Whether a fault is due for this request, and which kind's turn it is
/// (the turn only moves on when the fault is applied, see [`applied`]).
fn due(shared: &Shared, get: bool) -> Option<Fault> {
    if !shared.enabled.load(Ordering::Relaxed) || next(shared) % 100 >= shared.rate {
        return None;
    }
    let st = shared.state.lock().unwrap();
    if get {
        Some(Fault::ALL[st.turn_get % Fault::ALL.len()])
    } else {
        let kinds: Vec<Fault> = Fault::ALL.into_iter().filter(|f| !Fault::BODY.contains(f)).collect();
        Some(kinds[st.turn_other % kinds.len()])
    }
}

/// Records a request, and moves the turn on if its fault was applied.
fn record(shared: &Shared, mut seen: Seen, get: bool) {
    let mut st = shared.state.lock().unwrap();
    if seen.fault.is_some() {
        if get {
            st.turn_get += 1;
        } else {
            st.turn_other += 1;
        }
    }
    seen.phase.clone_from(&st.phase);
    st.seen.push(seen);
}

fn upstream_status(head: &str) -> Option<u16> {
    head.split(' ').nth(1).and_then(|c| c.parse().ok())
}

fn serve(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let Some((head, body)) = read_message(&mut client)? else { return Ok(()) };
    // In flight until the answer is ready, not until it is written: the
    // client may start its next request as soon as it has read an answer,
    // before this thread has finished writing it.
    let in_flight = InFlight::new(shared);
    let latency = shared.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        std::thread::sleep(Duration::from_millis(latency));
    }
    let (method, target, headers) = parse_head(&head);
    let get = method == "GET";
    let mut seen = Seen { phase: String::new(), method, target, headers, fault: None, upstream_status: None, body_len: None };
    let fault = due(shared, get);
    let xml = |code: &str| format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test's fault proxy</Message></Error>");
    if let Some(f) = fault.filter(|f| f.before_forwarding()) {
        // Recorded first: the client may retry before a held request ends.
        seen.fault = Some(f);
        record(shared, seen, get);
        drop(in_flight);
        return match f {
            Fault::Http500 => status(&mut client, 500, "Internal Server Error", "", &xml("InternalError")),
            Fault::Http503 => status(&mut client, 503, "Service Unavailable", "", &xml("SlowDown")),
            Fault::Throttle429 => status(&mut client, 429, "Too Many Requests", "Retry-After: 1\r\n", &xml("TooManyRequests")),
            Fault::ResetBefore => client.shutdown(Shutdown::Both),
            _ => {
                std::thread::sleep(shared.hold);
                client.shutdown(Shutdown::Both)
            }
        };
    }
    let answer = forward(shared, &head, &body);
    drop(in_flight);
    let (rhead, rbody) = match answer {
        Ok(r) => r,
        Err(_) => {
            // The storage did not answer: not a fault of ours.
            record(shared, seen, get);
            return client.shutdown(Shutdown::Both);
        }
    };
    seen.upstream_status = upstream_status(&rhead);
    seen.body_len = Some(rbody.len());
    // Applied only where it changes what the client sees.
    let applied = fault.filter(|f| match f {
        Fault::ResetAfter => true,
        Fault::Truncated => rbody.len() >= 2,
        Fault::SlowBody => rbody.len() >= 8,
        _ => false,
    });
    seen.fault = applied;
    record(shared, seen, get);
    match applied {
        Some(Fault::ResetAfter) => client.shutdown(Shutdown::Both),
        Some(Fault::Truncated) => {
            client.write_all(close_head(&rhead).as_bytes())?;
            client.write_all(&rbody[..rbody.len() / 2])?;
            client.shutdown(Shutdown::Both)
        }
        Some(Fault::SlowBody) => {
            client.write_all(close_head(&rhead).as_bytes())?;
            for piece in rbody.chunks(rbody.len().div_ceil(8)) {
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
