//! Streaming WAL (`reprise wal-stream`): RPO in seconds, or zero.
//!
//! `pg_receivewal` receives WAL over a replication slot into a local spool
//! as the server writes it (with `--synchronous` it flushes every record and
//! reports the position at once, so a server whose
//! `synchronous_standby_names` names this stream waits for it: RPO 0 for
//! the spool). This loop archives each completed segment into the
//! repository like `wal-push` and removes it from the spool, and uploads the
//! segment still being written every `partial_interval` as a write-once
//! `<segment>.partial.<millis>` object, so the repository itself is never
//! more than that interval behind. Recovery reads the newest partial copy of
//! the last segment when the full segment is not archived.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reprise_engine::format::wal::WalHeader;
use reprise_engine::{CancelToken, Repository};

use crate::cluster::PgBin;
use crate::conn;
use crate::error::{PgError, Result};
use crate::wal;
use crate::walname::{self, WalFile};

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub component: String,
    pub connection: String,
    pub password_env: Option<String>,
    pub spool: PathBuf,
    pub synchronous: bool,
    /// How often the segment being written is uploaded.
    pub partial_interval: Duration,
    pub bin: Option<PathBuf>,
    /// Stop after this long (tests, demos); `None` runs until cancelled.
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamReport {
    pub segments_archived: u64,
    pub partial_uploads: u64,
    pub slot: String,
}

/// The replication slot a component streams from.
#[must_use]
pub fn slot_name(component: &str) -> String {
    let clean: String = component.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("reprise_{clean}")
}

/// The application name the stream connects with (for
/// `synchronous_standby_names`).
#[must_use]
pub fn application_name(component: &str) -> String {
    slot_name(component)
}

fn receivewal(bin: &PgBin, opts: &StreamOptions, extra: &[&str]) -> Result<std::process::Command> {
    let cfg = conn::config(&opts.connection, opts.password_env.as_deref())?;
    let mut cmd = std::process::Command::new(bin.program("pg_receivewal")?);
    // Connection through libpq's environment: no password in arguments.
    if let Some(h) = cfg.get_hosts().first() {
        cmd.env("PGHOST", match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        });
    }
    if let Some(p) = cfg.get_ports().first() {
        cmd.env("PGPORT", p.to_string());
    }
    if let Some(u) = cfg.get_user() {
        cmd.env("PGUSER", u);
    }
    if let Some(pw) = cfg.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).into_owned());
    }
    cmd.env("PGAPPNAME", application_name(&opts.component));
    cmd.arg("-D").arg(&opts.spool).args(["--slot", &slot_name(&opts.component), "--no-loop"]).args(extra);
    Ok(cmd)
}

fn push_file(repo: &Repository, component: &str, path: &Path, name: &str) -> Result<()> {
    let data = std::fs::read(path).map_err(|e| PgError::io(path, e))?;
    let header = WalHeader {
        version: 1,
        name: name.to_owned(),
        size: data.len() as u64,
        hash: reprise_engine::walobj::hash(repo, &data)?,
        modified: jiff::Timestamp::now(),
        pushed: jiff::Timestamp::now(),
        host: reprise_engine::repository::hostname(),
        system_identifier: walname::long_page_header(&data).map_or(0, |h| h.system_identifier),
    };
    // Each upload has its own name (write-once): a name already there is
    // this stream's own earlier upload, or another writer's (then stored
    // beside it, and reported).
    match reprise_engine::walobj::create(repo, &format!("{component}/{name}"), &header, &data)? {
        Ok(_) | Err(reprise_engine::walobj::Conflict) => Ok(()),
    }
}

/// Streams until cancelled (or `duration`). Restarts `pg_receivewal` if the
/// connection drops.
pub fn stream(repo: &Arc<Repository>, opts: &StreamOptions, cancel: &CancelToken) -> Result<StreamReport> {
    let bin = PgBin::find(opts.bin.as_deref())?;
    std::fs::create_dir_all(&opts.spool).map_err(|e| PgError::io(&opts.spool, e))?;
    let mut report = StreamReport { slot: slot_name(&opts.component), ..StreamReport::default() };
    // The slot makes the server keep WAL until this stream has it.
    let out = receivewal(&bin, opts, &["--create-slot", "--if-not-exists"])?.stdin(Stdio::null()).output().map_err(|e| PgError::io("pg_receivewal", e))?;
    if !out.status.success() {
        return Err(PgError::Command { program: "pg_receivewal --create-slot".into(), message: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    let started = Instant::now();
    let mut child: Option<Child> = None;
    let mut last_partial: Option<(String, SystemTime, u64)> = None;
    let mut last_upload = Instant::now() - opts.partial_interval;
    loop {
        let finishing = cancel.is_cancelled() || opts.duration.is_some_and(|d| started.elapsed() >= d);
        if finishing {
            // Stop the receiver first (it flushes on SIGTERM), then archive
            // what it left in one last pass.
            if let Some(mut c) = child.take() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
                let _ = c.wait();
            }
        } else if child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some()) {
            let mut cmd = receivewal(&bin, opts, if opts.synchronous { &["--synchronous"] } else { &[] })?;
            child = Some(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| PgError::io("pg_receivewal", e))?);
        }
        // Completed segments: archive, then drop from the spool.
        let mut names: Vec<String> = std::fs::read_dir(&opts.spool)
            .map_err(|e| PgError::io(&opts.spool, e))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        names.sort();
        for name in &names {
            match walname::classify(name) {
                Some(WalFile::Segment(_) | WalFile::History(_)) => {
                    let path = opts.spool.join(name);
                    wal::push(repo, &opts.component, &path)?;
                    std::fs::remove_file(&path).map_err(|e| PgError::io(&path, e))?;
                    report.segments_archived += 1;
                }
                Some(WalFile::Partial) if last_upload.elapsed() >= opts.partial_interval || finishing => {
                    let path = opts.spool.join(name);
                    let md = std::fs::metadata(&path).map_err(|e| PgError::io(&path, e))?;
                    let stamp = (md.modified().unwrap_or(SystemTime::UNIX_EPOCH), md.len());
                    let seg = name.trim_end_matches(".partial").to_owned();
                    if last_partial.as_ref().is_none_or(|(s, m, l)| *s != seg || (*m, *l) != stamp) {
                        let millis = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                        push_file(repo, &opts.component, &path, &format!("{seg}.partial.{millis}"))?;
                        report.partial_uploads += 1;
                        last_partial = Some((seg, stamp.0, stamp.1));
                    }
                    last_upload = Instant::now();
                }
                _ => {}
            }
        }
        if finishing {
            return Ok(report);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
