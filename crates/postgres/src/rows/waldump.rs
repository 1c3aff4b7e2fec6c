//! The accident, as the write-ahead log tells it.
//!
//! `pg_waldump` (PostgreSQL's own decoder, shipped with the server) reads
//! the archived WAL after the state before the accident. From its heap and
//! transaction records this module learns, for the tables being repaired:
//!
//! * which transactions changed them, when they committed and where their
//!   commit record is — the first one after `--at` is the accident when the
//!   user gives no `--until`, and the state right after it is a recovery
//!   target at its commit record;
//! * where each UPDATE moved a row (old line pointer → new one), so that a
//!   row whose primary key the accident changed is recognised as the same
//!   row (`Window::successor`).
//!
//! Why pg_waldump rather than a second guess from timestamps: commit
//! records are the only exact boundary between one transaction and the
//! next (two commits can share a millisecond), `track_commit_timestamp` is
//! off by default and only says *when*, not *what*, and the tuple links
//! exist nowhere else once the old versions are vacuumed. The archive is
//! read segment by segment into the scratch folder, a few at a time, and
//! never further than needed.
//!
//! Records of a transaction are counted only once its COMMIT is seen
//! (subtransactions through the commit's `subxacts` list; aborted work is
//! dropped). A transaction whose records began before the WAL segment that
//! holds the state before the accident is seen by its commit only (for
//! TRUNCATE, by the relation files its commit drops).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use reprise_engine::{CancelToken, Repository};

use crate::cluster::{self, PgBin};
use crate::error::{PgError, Result};
use crate::wal;
use crate::walname::{Lsn, Segment};

use super::diff::TupleLoc;
use super::state::Relfile;

/// Row changes of one transaction in one relation file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// A committed transaction that changed the tables.
#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub xid: u32,
    pub commit_lsn: Lsn,
    /// As pg_waldump prints it, in UTC.
    pub committed_at: String,
    pub changes: HashMap<u32, Counts>,
    /// Relation files its commit dropped (TRUNCATE).
    pub truncated: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Hop {
    lsn: Lsn,
    commit: Lsn,
    xid: u32,
    /// `None`: the row was deleted here.
    to: Option<TupleLoc>,
}

#[derive(Debug, Default)]
struct Pending {
    changes: HashMap<u32, Counts>,
    hops: Vec<(TupleLoc, Hop)>,
}

/// What the WAL after the state before the accident says about the tables.
#[derive(Debug)]
pub(crate) struct Window {
    rels: HashSet<Relfile>,
    since: Lsn,
    pending: HashMap<u32, Pending>,
    hops: HashMap<TupleLoc, Vec<Hop>>,
    /// Committed at or after `since`, in commit order.
    pub transactions: Vec<Transaction>,
}

/// One record line of pg_waldump's output.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    rmgr: &'a str,
    xid: u32,
    lsn: Lsn,
    desc: &'a str,
    /// (block reference id, relation file, block number), main fork only.
    blocks: Vec<(u8, Relfile, u32)>,
}

fn parse_record(line: &str) -> Option<Record<'_>> {
    let rest = line.strip_prefix("rmgr: ")?;
    let rmgr = rest.split_whitespace().next()?;
    let xid = field(rest, "tx:")?.trim().parse().ok()?;
    let lsn = field(rest, "lsn:")?.trim().parse().ok()?;
    let (_, after_desc) = rest.split_once(", desc: ")?;
    let (desc, refs) = after_desc.split_once(", blkref #").unwrap_or((after_desc, ""));
    let mut blocks = Vec::new();
    if !refs.is_empty() {
        for r in refs.split(", blkref #") {
            // "0: rel 1663/5/16384 blk 0[ FPW]"; other forks say "fork NAME".
            let Some((id, body)) = r.split_once(": rel ") else { continue };
            let mut words = body.split_whitespace();
            let Some(path) = words.next() else { continue };
            let mut parts = path.split('/').map(str::parse::<u32>);
            let (Some(Ok(tablespace)), Some(Ok(database)), Some(Ok(relfilenode))) = (parts.next(), parts.next(), parts.next()) else { continue };
            let (Some(kw), Some(n)) = (words.next(), words.next()) else { continue };
            if kw != "blk" {
                continue;
            }
            let (Ok(id), Ok(block)) = (id.parse::<u8>(), n.parse::<u32>()) else { continue };
            blocks.push((id, Relfile { tablespace, database, relfilenode }, block));
        }
    }
    Some(Record { rmgr, xid, lsn, desc: desc.trim_end(), blocks })
}

/// The text after `name` up to the next comma.
fn field<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let start = s.find(name)? + name.len();
    let rest = &s[start..];
    Some(rest.split(',').next().unwrap_or(rest))
}

/// The number after `word ` in a record description (`off 3`, `new off 7`).
fn number_after(desc: &str, word: &str) -> Option<u32> {
    let i = desc.find(word)? + word.len();
    desc[i..].split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
}

/// `COMMIT 2026-11-21 10:30:00.123456 UTC; rels: base/5/16384; subxacts: 7 8`
struct XactDesc {
    time: String,
    subxacts: Vec<u32>,
    /// (database, relfilenode) of dropped relation files.
    dropped: Vec<(u32, u32)>,
}

fn parse_xact(desc: &str) -> XactDesc {
    let mut parts = desc.split("; ");
    let head = parts.next().unwrap_or("");
    let time = head.split_once(' ').map_or("", |(_, t)| t).to_owned();
    let mut out = XactDesc { time, subxacts: Vec::new(), dropped: Vec::new() };
    for p in parts {
        if let Some(list) = p.strip_prefix("subxacts:") {
            out.subxacts = list.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        } else if let Some(list) = p.strip_prefix("rels:") {
            for path in list.split_whitespace() {
                let mut it = path.rsplit('/');
                if let (Some(Ok(rel)), Some(Ok(db))) = (it.next().map(str::parse), it.next().map(str::parse)) {
                    out.dropped.push((db, rel));
                }
            }
        }
    }
    out
}

impl Window {
    pub(crate) fn new(rels: HashSet<Relfile>, since: Lsn) -> Window {
        Window { rels, since, pending: HashMap::new(), hops: HashMap::new(), transactions: Vec::new() }
    }

    fn ours(&self, r: &Record<'_>, id: u8) -> Option<(Relfile, u32)> {
        r.blocks.iter().find(|(i, rel, _)| *i == id && self.rels.contains(rel)).map(|(_, rel, b)| (*rel, *b))
    }

    /// Takes one line of pg_waldump's output; returns the transaction it
    /// committed when that transaction changed the tables.
    pub(crate) fn feed(&mut self, line: &str) -> Option<&Transaction> {
        let r = parse_record(line)?;
        let op = r.desc.split_whitespace().next().unwrap_or("");
        let kind = op.split('+').next().unwrap_or(op);
        match (r.rmgr, kind) {
            ("Heap", "INSERT") => {
                let (rel, _) = self.ours(&r, 0)?;
                self.pending.entry(r.xid).or_default().changes.entry(rel.relfilenode).or_default().inserted += 1;
            }
            ("Heap2", "MULTI_INSERT") => {
                let (rel, _) = self.ours(&r, 0)?;
                let n = number_after(r.desc, "MULTI_INSERT").unwrap_or(1);
                self.pending.entry(r.xid).or_default().changes.entry(rel.relfilenode).or_default().inserted += u64::from(n);
            }
            ("Heap", "DELETE") => {
                let (rel, block) = self.ours(&r, 0)?;
                let offset = number_after(r.desc, "off ")? as u16;
                let p = self.pending.entry(r.xid).or_default();
                p.changes.entry(rel.relfilenode).or_default().deleted += 1;
                p.hops.push((TupleLoc { relfilenode: rel.relfilenode, block, offset }, Hop { lsn: r.lsn, commit: Lsn(0), xid: r.xid, to: None }));
            }
            ("Heap", "UPDATE" | "HOT_UPDATE") => {
                // Block reference 0 is the new version's page; 1 the old
                // one's when it differs (heapam.c, log_heap_update).
                let new = self.ours(&r, 0);
                let old = self.ours(&r, 1).or(new);
                let (old_rel, old_block) = old?;
                let (head, tail) = r.desc.split_once("; new ")?;
                let from = TupleLoc { relfilenode: old_rel.relfilenode, block: old_block, offset: number_after(head, "off ")? as u16 };
                let to = new.and_then(|(rel, block)| Some(TupleLoc { relfilenode: rel.relfilenode, block, offset: number_after(tail, "off ")? as u16 }));
                let p = self.pending.entry(r.xid).or_default();
                p.changes.entry(old_rel.relfilenode).or_default().updated += 1;
                p.hops.push((from, Hop { lsn: r.lsn, commit: Lsn(0), xid: r.xid, to }));
            }
            ("Transaction", "COMMIT") => return self.commit(r.xid, r.lsn, &parse_xact(r.desc)),
            ("Transaction", "ABORT") => {
                let x = parse_xact(r.desc);
                self.pending.remove(&r.xid);
                for s in x.subxacts {
                    self.pending.remove(&s);
                }
            }
            _ => {}
        }
        None
    }

    fn commit(&mut self, xid: u32, lsn: Lsn, x: &XactDesc) -> Option<&Transaction> {
        let mut changes: HashMap<u32, Counts> = HashMap::new();
        let mut hops = Vec::new();
        for id in std::iter::once(xid).chain(x.subxacts.iter().copied()) {
            if let Some(p) = self.pending.remove(&id) {
                for (rel, c) in p.changes {
                    let e = changes.entry(rel).or_default();
                    e.inserted += c.inserted;
                    e.updated += c.updated;
                    e.deleted += c.deleted;
                }
                hops.extend(p.hops);
            }
        }
        let truncated: Vec<u32> =
            x.dropped.iter().filter(|(db, rel)| self.rels.iter().any(|r| r.database == *db && r.relfilenode == *rel)).map(|(_, rel)| *rel).collect();
        if lsn < self.since || (changes.is_empty() && truncated.is_empty()) {
            return None;
        }
        for (from, mut hop) in hops {
            hop.commit = lsn;
            self.hops.entry(from).or_default().push(hop);
        }
        self.transactions.push(Transaction { xid, commit_lsn: lsn, committed_at: x.time.clone(), changes, truncated });
        self.transactions.last()
    }

    /// Where the row stored at `from` before the accident has its newest
    /// version after the transactions committed before `end`, and which
    /// transaction wrote it there; `None` if no UPDATE moved it (or it was
    /// deleted).
    pub(crate) fn successor(&self, from: TupleLoc, end: Lsn) -> Option<(TupleLoc, u32)> {
        let mut at = from;
        let mut after = Lsn(0);
        let mut last = None;
        // A chain is as long as the updates of one row in the window; the
        // bound only guards against a malformed log.
        for _ in 0..100_000 {
            let next = self.hops.get(&at).and_then(|hs| hs.iter().filter(|h| h.lsn > after && h.commit < end).min_by_key(|h| h.lsn));
            let Some(h) = next else { break };
            let to = h.to?;
            at = to;
            after = h.lsn;
            last = Some(h.xid);
        }
        last.map(|x| (at, x))
    }
}

/// The archived WAL from one point on, as files pg_waldump can read.
pub(crate) struct Archive<'a> {
    pub repo: &'a Repository,
    pub component: &'a str,
    pub bin: &'a PgBin,
    /// A private folder for the segments being read.
    pub dir: PathBuf,
    /// Segments in replay order, from the one holding the start on.
    pub segments: Vec<Segment>,
    pub segment_size: u64,
    pub cancel: &'a CancelToken,
}

/// Segments read at a time (16 MiB each by default).
const BATCH: usize = 8;

impl Archive<'_> {
    /// Runs pg_waldump from `from` on, handing each record line (with its
    /// LSN) to `visit` until it returns `false` or the archive ends.
    pub(crate) fn scan(&self, from: Lsn, mut visit: impl FnMut(&str, Lsn) -> bool) -> Result<()> {
        let seg = self.segment_size;
        let Some(mut idx) = self.segments.iter().position(|s| s.number == from.0 / seg) else {
            return Err(PgError::Recovery(format!("the WAL holding LSN {from} is not archived: the accident cannot be looked up")));
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| PgError::io(&self.dir, e))?;
        cluster::hand_over(&self.dir, 0o700)?;
        let mut resume = from;
        let mut last_seen: Option<Lsn> = None;
        let mut first_run = true;
        loop {
            let tli = self.segments[idx].timeline;
            let end = idx + self.segments[idx..(idx + BATCH).min(self.segments.len())].iter().take_while(|s| s.timeline == tli).count();
            self.fill(&self.segments[idx..end])?;
            let err_path = self.dir.with_extension("err");
            let err = std::fs::File::create(&err_path).map_err(|e| PgError::io(&err_path, e))?;
            let mut child = self
                .bin
                .command("pg_waldump")?
                .arg("-p")
                .arg(&self.dir)
                .args(["-t", &tli.to_string(), "-s", &resume.to_string(), "-r", "Heap", "-r", "Heap2", "-r", "Transaction"])
                .env("TZ", "UTC")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(err)
                .spawn()
                .map_err(|e| PgError::io("pg_waldump", e))?;
            let stdout = child.stdout.take().expect("piped");
            let mut printed = false;
            let mut stop = false;
            for line in BufReader::new(stdout).lines() {
                let line = line.map_err(|e| PgError::io("pg_waldump", e))?;
                let Some(lsn) = field(&line, "lsn:").and_then(|l| l.trim().parse::<Lsn>().ok()) else { continue };
                printed = true;
                if last_seen.is_some_and(|s| lsn <= s) {
                    continue;
                }
                last_seen = Some(lsn);
                if self.cancel.is_cancelled() {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(PgError::Interrupted);
                }
                if !visit(&line, lsn) {
                    stop = true;
                    break;
                }
            }
            if stop {
                let _ = child.kill();
            }
            // pg_waldump ends with an error at the end of the files it has:
            // only a first run that printed nothing is a failure.
            let _ = child.wait();
            if first_run && !printed {
                let message = std::fs::read_to_string(&err_path).unwrap_or_default();
                let message = message.lines().next().unwrap_or("no record decoded").to_owned();
                return Err(PgError::Command { program: "pg_waldump".into(), message });
            }
            first_run = false;
            if stop || end == self.segments.len() {
                return Ok(());
            }
            // Records that cross into the next batch were not decoded: start
            // again at the last record seen, or at the last segment read.
            if self.segments[end].timeline == tli {
                let last_start = self.segments[end - 1].start_lsn(seg);
                resume = last_seen.map_or(last_start, |l| l.max(last_start));
                idx = (end - 1).max(idx + 1);
            } else {
                idx = end;
            }
            resume = resume.max(self.segments[idx].start_lsn(seg));
        }
    }

    /// Puts exactly `window` in the folder: fetches what is missing,
    /// removes segments already read.
    fn fill(&self, window: &[Segment]) -> Result<()> {
        let seg = self.segment_size;
        let wanted: HashSet<String> = window.iter().map(|s| s.name(seg)).collect();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if !wanted.contains(e.file_name().to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for name in &wanted {
            let path = self.dir.join(name);
            if path.exists() {
                continue;
            }
            let Some((_, data)) = wal::read_or_partial(self.repo, self.component, name)? else {
                return Err(PgError::Recovery(format!("WAL segment {name} is not archived: the accident cannot be looked up past it")));
            };
            std::fs::write(&path, &data).map_err(|e| PgError::io(&path, e))?;
            cluster::hand_over(&path, 0o600)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REL: Relfile = Relfile { tablespace: 1663, database: 5, relfilenode: 16384 };

    fn window() -> Window {
        Window::new([REL].into_iter().collect(), "0/1525100".parse().expect("lsn"))
    }

    #[test]
    fn records_are_read_as_pg_waldump_15_prints_them() {
        let r = parse_record("rmgr: Heap        len (rec/tot):     70/    70, tx:        725, lsn: 0/015251C8, prev 0/01525180, desc: UPDATE off 3 xmax 725 flags 0x40 KEYS_UPDATED ; new off 7 xmax 0, blkref #0: rel 1663/5/16384 blk 1, blkref #1: rel 1663/5/16384 blk 0 FPW")
            .expect("parsed");
        assert_eq!(r.rmgr, "Heap");
        assert_eq!(r.xid, 725);
        assert_eq!(r.lsn, "0/015251C8".parse().expect("lsn"));
        assert_eq!(r.desc, "UPDATE off 3 xmax 725 flags 0x40 KEYS_UPDATED ; new off 7 xmax 0");
        assert_eq!(r.blocks, vec![(0, REL, 1), (1, REL, 0)]);
        assert!(parse_record("pg_waldump: error: error in WAL record at 0/1525688: invalid record length").is_none());
    }

    #[test]
    fn a_committed_transaction_with_subtransactions_counts_all_its_changes() {
        let mut w = window();
        let lines = [
            "rmgr: Heap        len (rec/tot):     54/    54, tx:        725, lsn: 0/01525148, prev 0/01524BF0, desc: DELETE off 1 flags 0x00 KEYS_UPDATED , blkref #0: rel 1663/5/16384 blk 0",
            "rmgr: Heap        len (rec/tot):     71/    71, tx:        725, lsn: 0/01525180, prev 0/01525148, desc: HOT_UPDATE off 2 xmax 725 flags 0x60 ; new off 6 xmax 0, blkref #0: rel 1663/5/16384 blk 0",
            "rmgr: Heap        len (rec/tot):     67/    67, tx:        726, lsn: 0/015252A0, prev 0/01525250, desc: INSERT off 9 flags 0x00, blkref #0: rel 1663/5/16384 blk 0",
            "rmgr: Heap        len (rec/tot):     67/    67, tx:        727, lsn: 0/015252B0, prev 0/01525250, desc: INSERT off 10 flags 0x00, blkref #0: rel 1663/5/16384 blk 0",
            "rmgr: Heap        len (rec/tot):     67/    67, tx:        728, lsn: 0/015252C0, prev 0/01525250, desc: INSERT off 11 flags 0x00, blkref #0: rel 1663/5/99999 blk 0",
        ];
        for l in lines {
            assert!(w.feed(l).is_none());
        }
        // 727 aborted (a rolled back subtransaction): its insert is not the accident's.
        assert!(w.feed("rmgr: Transaction len (rec/tot):     34/    34, tx:        727, lsn: 0/01525300, prev 0/015252E8, desc: ABORT 2026-11-26 11:05:43.700000 UTC").is_none());
        let t = w
            .feed("rmgr: Transaction len (rec/tot):     46/    46, tx:        725, lsn: 0/01525328, prev 0/015252E8, desc: COMMIT 2026-11-26 11:05:43.776351 UTC; subxacts: 726")
            .expect("the accident")
            .clone();
        assert_eq!(t.xid, 725);
        assert_eq!(t.committed_at, "2026-11-26 11:05:43.776351 UTC");
        assert_eq!(t.changes[&16384], Counts { inserted: 1, updated: 1, deleted: 1 });
        // Another table's transaction is not reported.
        assert!(w.feed("rmgr: Transaction len (rec/tot):     34/    34, tx:        728, lsn: 0/01525400, prev 0/015252E8, desc: COMMIT 2026-11-26 11:05:44.000000 UTC").is_none());
        let end = "0/1525500".parse().expect("lsn");
        assert_eq!(w.successor(TupleLoc { relfilenode: 16384, block: 0, offset: 2 }, end), Some((TupleLoc { relfilenode: 16384, block: 0, offset: 6 }, 725)));
        assert_eq!(w.successor(TupleLoc { relfilenode: 16384, block: 0, offset: 1 }, end), None, "deleted");
        // Not yet committed at `end`: not followed.
        assert_eq!(w.successor(TupleLoc { relfilenode: 16384, block: 0, offset: 2 }, "0/1525328".parse().expect("lsn")), None);
    }

    #[test]
    fn a_commit_before_the_state_before_is_not_the_accident() {
        let mut w = window();
        w.feed("rmgr: Heap        len (rec/tot):     67/    67, tx:        700, lsn: 0/01525000, prev 0/01524F00, desc: INSERT off 9 flags 0x00, blkref #0: rel 1663/5/16384 blk 0");
        assert!(w.feed("rmgr: Transaction len (rec/tot):     34/    34, tx:        700, lsn: 0/01525050, prev 0/01525000, desc: COMMIT 2026-11-26 11:05:40.000000 UTC").is_none());
    }

    #[test]
    fn a_truncate_is_seen_by_the_files_its_commit_drops() {
        let mut w = window();
        let t = w
            .feed("rmgr: Transaction len (rec/tot):    206/   206, tx:        732, lsn: 0/01532640, prev 0/015325B0, desc: COMMIT 2026-11-26 11:06:00.523928 UTC; rels: base/5/16384 base/5/16391; inval msgs: catcache 55")
            .expect("truncate");
        assert_eq!(t.truncated, vec![16384]);
    }
}
