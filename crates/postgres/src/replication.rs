//! A physical replication connection, spoken directly.
//!
//! Synchronous streaming is only honest if the position reported to the
//! server as *flushed* is what the repository holds: PostgreSQL releases a
//! waiting commit when its synchronous standby reports a flush position at
//! or past the commit record. `pg_receivewal --synchronous` reports what it
//! flushed to its local spool, and it is a separate process that outlives
//! a killed parent; putting a proxy between it and the server would mean
//! rewriting its status messages in flight (impossible through TLS, and the
//! child would still be there to orphan). So reprise is the standby itself:
//! it opens the walsender connection, receives `XLogData`, and sends
//! `Standby Status Update` messages whose write, flush and apply positions
//! are all the end of what is durable in the repository. When the process
//! dies, the kernel closes the socket and the server gets no more
//! acknowledgements: there is nothing left running to acknowledge anything.
//!
//! rust-postgres (the `postgres` crate used everywhere else) cannot open a
//! replication connection: it has no `replication` startup parameter and no
//! CopyBoth mode. Its protocol crate, `postgres-protocol`, is used here for
//! message framing and for authentication (SCRAM-SHA-256, MD5, clear text);
//! what is written by hand is the small walsender subset (PostgreSQL
//! documentation, "Streaming Replication Protocol"): the startup exchange,
//! simple queries, `CopyBothResponse` (which `postgres-protocol` does not
//! parse), and the three CopyData payloads `w`, `k` and `r`.
//!
//! No TLS: the connection is a Unix socket or TCP in clear. A connection
//! string asking for `sslmode=require` (or stricter) is refused rather than
//! silently downgraded; across a network, use a tunnel (SSH, WireGuard).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use parking_lot::Mutex;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use crate::conn;
use crate::error::{PgError, Result};
use crate::walname::Lsn;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// The socket under a replication connection.
#[derive(Debug)]
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    fn try_clone(&self) -> std::io::Result<Socket> {
        Ok(match self {
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_read_timeout(t),
            Socket::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Socket::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Socket::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.flush(),
            Socket::Unix(s) => s.flush(),
        }
    }
}

/// What `IDENTIFY_SYSTEM` answers.
#[derive(Debug, Clone, Copy)]
pub struct SystemIdentity {
    pub system_identifier: u64,
    pub timeline: u32,
    /// The server's current flush position.
    pub flushed: Lsn,
}

/// A connection in walsender mode, before `START_REPLICATION`.
#[derive(Debug)]
pub struct ReplicationConnection {
    socket: Socket,
    buf: BytesMut,
    /// `host=… port=… user=…`, for messages (never the password).
    target: String,
}

/// A message from the server while streaming.
#[derive(Debug)]
pub enum WalMessage {
    /// WAL bytes starting at `start`.
    Data { start: Lsn, data: Bytes },
    /// The server is alive; `reply_requested` asks for a status update now.
    Keepalive { end: Lsn, reply_requested: bool },
    /// The timeline being streamed ended (the server was promoted
    /// elsewhere, or this one switched): reconnect to follow.
    EndOfTimeline,
}

impl ReplicationConnection {
    /// Connects to the server of `cfg` in physical replication mode, as
    /// `application_name` (what `synchronous_standby_names` matches).
    pub fn connect(cfg: &postgres::Config, application_name: &str) -> Result<ReplicationConnection> {
        let target = conn::describe(cfg);
        let fail = |message: String| PgError::Connect { target: target.clone(), message };
        if matches!(cfg.get_ssl_mode(), postgres::config::SslMode::Require) {
            return Err(PgError::Invalid(format!(
                "the connection of this component asks for sslmode=require, but wal-stream speaks to the server without TLS ({target}): connect over a Unix socket or loopback, or through a tunnel (SSH, WireGuard), and remove sslmode from the connection string"
            )));
        }
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let timeout = cfg.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10));
        let socket = match cfg.get_hosts().first() {
            Some(postgres::config::Host::Unix(dir)) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                Socket::Unix(UnixStream::connect(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?)
            }
            Some(postgres::config::Host::Tcp(host)) => {
                use std::net::ToSocketAddrs;
                let addrs: Vec<_> = (host.as_str(), port).to_socket_addrs().map_err(|e| fail(format!("{host}: {e}")))?.collect();
                let mut last = None;
                let mut connected = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, timeout) {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let s = connected.ok_or_else(|| fail(last.map_or_else(|| format!("{host}: no address"), |e| e.to_string())))?;
                // Status updates are tiny and latency is the point.
                let _ = s.set_nodelay(true);
                Socket::Tcp(s)
            }
            None => return Err(fail("no host in the connection string".into())),
        };
        socket.set_read_timeout(Some(timeout)).map_err(|e| fail(e.to_string()))?;
        let mut c = ReplicationConnection { socket, buf: BytesMut::with_capacity(1 << 16), target };
        c.startup(cfg, application_name)?;
        Ok(c)
    }

    fn startup(&mut self, cfg: &postgres::Config, application_name: &str) -> Result<()> {
        let user = cfg.get_user().unwrap_or("postgres").to_owned();
        let mut out = BytesMut::new();
        let params = [("user", user.as_str()), ("replication", "true"), ("application_name", application_name)];
        frontend::startup_message(params.iter().copied(), &mut out).map_err(|e| self.io(&e))?;
        self.send(&out)?;
        let password = cfg.get_password().map(<[u8]>::to_vec);
        let target = self.target.clone();
        let no_password = || PgError::Connect {
            target: target.clone(),
            message: "the server asks for a password: put it in the environment variable the plan's password_env names (PGPASSWORD by default)".into(),
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let mut out = BytesMut::new();
            match self.read_message()? {
                Message::AuthenticationOk => break,
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password.as_deref().ok_or_else(no_password)?, &mut out).map_err(|e| self.io(&e))?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(user.as_bytes(), password.as_deref().ok_or_else(no_password)?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut out).map_err(|e| self.io(&e))?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut offered = body.mechanisms();
                    let mut scram_offered = false;
                    while let Some(m) = offered.next().map_err(|e| self.io(&e))? {
                        scram_offered |= m == SCRAM_SHA_256;
                    }
                    if !scram_offered {
                        return Err(PgError::Connect { target: self.target.clone(), message: "the server offers no SASL mechanism reprise speaks (SCRAM-SHA-256 without channel binding)".into() });
                    }
                    let s = ScramSha256::new(password.as_deref().ok_or_else(no_password)?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out).map_err(|e| self.io(&e))?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| self.protocol("SASL continue before SASL start"))?;
                    s.update(body.data()).map_err(|e| PgError::Connect { target: self.target.clone(), message: format!("SCRAM: {e}") })?;
                    frontend::sasl_response(s.message(), &mut out).map_err(|e| self.io(&e))?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let mut s = scram.take().ok_or_else(|| self.protocol("SASL final before SASL start"))?;
                    s.finish(body.data()).map_err(|e| PgError::Connect { target: self.target.clone(), message: format!("SCRAM: the server's proof is wrong: {e}") })?;
                }
                Message::ErrorResponse(body) => {
                    let (_, message) = error_fields(&body);
                    return Err(PgError::Connect { target: self.target.clone(), message });
                }
                Message::NoticeResponse(_) => {}
                _ => return Err(PgError::Connect { target: self.target.clone(), message: "the server asks for an authentication method reprise does not speak (use scram-sha-256, md5, password or trust in pg_hba.conf)".into() }),
            }
            if !out.is_empty() {
                self.send(&out)?;
            }
        }
        loop {
            match self.read_message()? {
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => {
                    let (_, message) = error_fields(&body);
                    return Err(PgError::Connect { target: self.target.clone(), message });
                }
                _ => {}
            }
        }
    }

    fn io(&self, e: &std::io::Error) -> PgError {
        PgError::Stream(format!("{}: {e}", self.target))
    }

    fn protocol(&self, what: &str) -> PgError {
        PgError::Stream(format!("{}: unexpected message from the server: {what}", self.target))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.socket.write_all(bytes).map_err(|e| self.io(&e))
    }

    /// Reads until one whole message is buffered; `None` on a read timeout.
    fn fill(&mut self) -> Result<bool> {
        let mut chunk = [0u8; 16 << 10];
        match self.socket.read(&mut chunk) {
            Ok(0) => Err(PgError::Stream(format!("{}: the server closed the connection", self.target))),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(self.io(&e)),
        }
    }

    /// The next message, or `None` if none arrived before the read timeout.
    fn try_read_message(&mut self) -> Result<Option<Message>> {
        loop {
            // CopyBothResponse ('W') is not one of postgres-protocol's
            // messages: its body (format, column formats) carries nothing
            // a physical stream needs, so it becomes an empty CopyOut.
            if self.buf.len() >= 5 && self.buf[0] == b'W' {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
                if self.buf.len() > len {
                    self.buf.advance(len + 1);
                    return Ok(Some(Message::CopyOutResponse(copy_both_marker())));
                }
            } else if let Some(m) = Message::parse(&mut self.buf).map_err(|e| self.io(&e))? {
                return Ok(Some(m));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    fn read_message(&mut self) -> Result<Message> {
        self.try_read_message()?.ok_or_else(|| PgError::Stream(format!("{}: the server did not answer in time", self.target)))
    }

    /// Runs one replication command; returns its rows, each column as raw
    /// bytes (`None` for NULL).
    pub fn query(&mut self, command: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>> {
        let mut out = BytesMut::new();
        frontend::query(command, &mut out).map_err(|e| self.io(&e))?;
        self.send(&out)?;
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            match self.read_message()? {
                Message::DataRow(row) => {
                    let buf = row.buffer();
                    let mut cols = Vec::new();
                    let mut ranges = row.ranges();
                    while let Some(r) = ranges.next().map_err(|e| self.io(&e))? {
                        cols.push(r.map(|r| buf[r].to_vec()));
                    }
                    rows.push(cols);
                }
                Message::ErrorResponse(body) => {
                    let (code, message) = error_fields(&body);
                    failure = Some(PgError::Server { code, message });
                }
                Message::ReadyForQuery(_) => return failure.map_or(Ok(rows), Err),
                _ => {}
            }
        }
    }

    fn text(&self, rows: &[Vec<Option<Vec<u8>>>], row: usize, col: usize, what: &str) -> Result<String> {
        rows.get(row)
            .and_then(|r| r.get(col))
            .and_then(|v| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or_else(|| self.protocol(&format!("{what} is missing")))
    }

    pub fn identify_system(&mut self) -> Result<SystemIdentity> {
        let rows = self.query("IDENTIFY_SYSTEM")?;
        let system_identifier = self.text(&rows, 0, 0, "systemid")?.parse().map_err(|_| self.protocol("systemid is not a number"))?;
        let timeline = self.text(&rows, 0, 1, "timeline")?.parse().map_err(|_| self.protocol("timeline is not a number"))?;
        let flushed = self.text(&rows, 0, 2, "xlogpos")?.parse().map_err(|e: String| self.protocol(&e))?;
        Ok(SystemIdentity { system_identifier, timeline, flushed })
    }

    /// A server setting (`SHOW` works in walsender mode).
    pub fn show(&mut self, name: &str) -> Result<String> {
        let rows = self.query(&format!("SHOW {name}"))?;
        self.text(&rows, 0, 0, name)
    }

    /// Creates the physical slot `slot` keeping WAL from now on; `false`
    /// if it already exists.
    pub fn create_slot(&mut self, slot: &str) -> Result<bool> {
        match self.query(&format!("CREATE_REPLICATION_SLOT {slot} PHYSICAL RESERVE_WAL")) {
            Ok(_) => Ok(true),
            Err(PgError::Server { code, .. }) if code == "42710" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Where the slot keeps WAL from, and on which timeline
    /// (`READ_REPLICATION_SLOT`, PostgreSQL 15 and later); `None` when the
    /// server cannot say.
    pub fn slot_position(&mut self, slot: &str) -> Result<Option<(Lsn, u32)>> {
        let rows = match self.query(&format!("READ_REPLICATION_SLOT {slot}")) {
            Ok(r) => r,
            // Before PostgreSQL 15: unknown command.
            Err(PgError::Server { code, .. }) if code == "42601" => return Ok(None),
            Err(e) => return Err(e),
        };
        let lsn = rows.first().and_then(|r| r.get(1)).and_then(|v| v.as_deref()).and_then(|v| String::from_utf8_lossy(v).parse::<Lsn>().ok());
        let tli = rows.first().and_then(|r| r.get(2)).and_then(|v| v.as_deref()).and_then(|v| String::from_utf8_lossy(v).parse::<u32>().ok());
        Ok(lsn.zip(tli))
    }

    /// The history file of `timeline`: its name and its bytes.
    pub fn timeline_history(&mut self, timeline: u32) -> Result<(String, Vec<u8>)> {
        let rows = self.query(&format!("TIMELINE_HISTORY {timeline}"))?;
        let name = self.text(&rows, 0, 0, "filename")?;
        // Sent raw, although the column is declared bytea.
        let content = rows.first().and_then(|r| r.get(1)).cloned().flatten().ok_or_else(|| self.protocol("history content is missing"))?;
        Ok((name, content))
    }

    /// Starts streaming from `start` on `timeline` through `slot`.
    pub fn start(mut self, slot: &str, start: Lsn, timeline: u32) -> Result<WalStream> {
        let mut out = BytesMut::new();
        frontend::query(&format!("START_REPLICATION SLOT {slot} PHYSICAL {start} TIMELINE {timeline}"), &mut out).map_err(|e| self.io(&e))?;
        self.send(&out)?;
        loop {
            match self.read_message()? {
                Message::CopyOutResponse(_) => break,
                Message::ErrorResponse(body) => {
                    let (code, message) = error_fields(&body);
                    // The ReadyForQuery that follows does not matter: the connection is dropped.
                    return Err(PgError::Server { code, message });
                }
                Message::NoticeResponse(_) => {}
                _ => return Err(self.protocol("expected CopyBothResponse")),
            }
        }
        let writer = self.socket.try_clone().map_err(|e| self.io(&e))?;
        Ok(WalStream { conn: self, status: Arc::new(StatusSender { socket: Mutex::new(writer) }) })
    }
}

/// `CopyBothResponse` stands in as an empty `CopyOutResponse` (see
/// [`ReplicationConnection::try_read_message`]).
fn copy_both_marker() -> postgres_protocol::message::backend::CopyOutResponseBody {
    let mut b = BytesMut::new();
    // Tag, length 7 (4 + format byte + u16 column count 0).
    b.extend_from_slice(&[b'H', 0, 0, 0, 7, 0, 0, 0]);
    match Message::parse(&mut b) {
        Ok(Some(Message::CopyOutResponse(body))) => body,
        _ => unreachable!("a well-formed CopyOutResponse"),
    }
}

/// SQLSTATE and message of an error response.
fn error_fields(body: &postgres_protocol::message::backend::ErrorResponseBody) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

/// A connection after `START_REPLICATION`: WAL in, status updates out.
#[derive(Debug)]
pub struct WalStream {
    conn: ReplicationConnection,
    status: Arc<StatusSender>,
}

impl WalStream {
    /// The next message, waiting at most `timeout`; `None` if none came.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<WalMessage>> {
        self.conn.socket.set_read_timeout(Some(timeout.max(Duration::from_millis(1)))).map_err(|e| self.conn.io(&e))?;
        loop {
            let Some(m) = self.conn.try_read_message()? else { return Ok(None) };
            match m {
                Message::CopyData(body) => {
                    let mut data = body.into_bytes();
                    if data.is_empty() {
                        return Err(self.conn.protocol("empty CopyData"));
                    }
                    match data.get_u8() {
                        b'w' if data.len() >= 24 => {
                            let start = Lsn(data.get_u64());
                            let _end = data.get_u64();
                            let _sent = data.get_i64();
                            return Ok(Some(WalMessage::Data { start, data }));
                        }
                        b'k' if data.len() >= 17 => {
                            let end = Lsn(data.get_u64());
                            let _sent = data.get_i64();
                            return Ok(Some(WalMessage::Keepalive { end, reply_requested: data.get_u8() != 0 }));
                        }
                        t => return Err(self.conn.protocol(&format!("CopyData of kind {:?}", t as char))),
                    }
                }
                Message::CopyDone => {
                    // End of the timeline: acknowledge; the caller reconnects.
                    let mut out = BytesMut::new();
                    frontend::copy_done(&mut out);
                    let _ = self.status.socket.lock().write_all(&out);
                    return Ok(Some(WalMessage::EndOfTimeline));
                }
                Message::ErrorResponse(body) => {
                    let (code, message) = error_fields(&body);
                    return Err(PgError::Server { code, message });
                }
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                _ => return Err(self.conn.protocol("a message that has no place in a WAL stream")),
            }
        }
    }

    /// Sends status updates (also from another thread).
    #[must_use]
    pub fn status(&self) -> Arc<StatusSender> {
        Arc::clone(&self.status)
    }
}

/// The sending half of a streaming connection.
#[derive(Debug)]
pub struct StatusSender {
    socket: Mutex<Socket>,
}

impl StatusSender {
    /// Reports `durable` as written, flushed and applied: the server
    /// releases commits waiting for this standby up to it, and its slot
    /// keeps everything after it.
    pub fn report(&self, durable: Lsn, reply_requested: bool) -> Result<()> {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64) - PG_EPOCH_OFFSET_MICROS;
        let mut payload = BytesMut::with_capacity(34);
        payload.extend_from_slice(b"r");
        for _ in 0..3 {
            payload.extend_from_slice(&durable.0.to_be_bytes());
        }
        payload.extend_from_slice(&now.to_be_bytes());
        payload.extend_from_slice(&[u8::from(reply_requested)]);
        let mut out = BytesMut::new();
        frontend::CopyData::new(payload.freeze()).map_err(|e| PgError::Stream(e.to_string()))?.write(&mut out);
        self.socket.lock().write_all(&out).map_err(|e| PgError::Stream(format!("sending a status update: {e}")))
    }

    /// Closes the connection (both directions): the receiving side fails
    /// at once and the server gets no more status updates.
    pub fn close(&self) {
        self.socket.lock().shutdown();
    }
}
