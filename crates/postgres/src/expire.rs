//! WAL retention: which archived WAL files the kept base backups and the
//! point-in-time window still need, and removing the rest.
//!
//! After `forget` has decided which base backups stay, WAL is kept:
//!
//! * **continuously from the start of the *anchor*** — the newest kept base
//!   backup that ended at or before the start of the PITR window (now minus
//!   the window), or the oldest kept base backup if none is that old. Any
//!   moment from the anchor's end to now stays restorable; without a window,
//!   the anchor is the newest base backup (restore to the latest state);
//! * **for every other kept base backup, its own range** (start to stop
//!   segment on its timeline): what recovery needs to reach consistency, so
//!   that a monthly or yearly base backup restores years later;
//! * **every history file** (a few bytes each; timeline paths need them).
//!
//! Nothing else is kept, and streamed ranges of a segment that `wal-stream`
//! has since stored whole go too (no restore reads them; a stream writing
//! with a write-only credential cannot delete them itself). With no base backup at all, nothing is removed: WAL
//! with nothing to replay it onto may be all there is while the first base
//! backup runs.
//!
//! Removal is two-phase, like packs (`reprise_engine::prune`): `forget`
//! only *marks* the WAL it no longer keeps, in a prune mark the
//! administrator signs (docs/FORMAT.md 14), and `prune` deletes it once the
//! mark's grace period is over ([`sweep`]). Until then a mistaken `forget`
//! is undone by running `forget` again with a policy that keeps the WAL:
//! a file a later run keeps is taken out of its mark (the mark is
//! rewritten without it, with its original time). The sweep, like the pack
//! sweep, rescues what a base backup that exists *then* needs (its own
//! range), so a base backup committed while the mark waited is never left
//! without the WAL that makes it consistent.
//!
//! Each run says which point-in-time windows it closes ([`Window`]): the
//! times some base backup could reach with the WAL before, and no base
//! backup can reach after (and, for a run that undoes a mark, which reopen).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use reprise_engine::backends::{ErrorKind, ObjectKind};
use reprise_engine::Repository;
use reprise_engine::format::Id;
use reprise_engine::prune::Mark;

use crate::restore::BaseBackupInfo;
use crate::walname::{self, Segment, WalFile};
use crate::Result;

/// What a WAL file is kept for.
#[derive(Debug, Clone)]
pub struct KeepRule {
    /// Segments numbered from here on are kept, on every timeline.
    pub continuous_from: Segment,
    pub anchor: Id,
    pub anchor_stop: Timestamp,
    /// `(timeline, first, last)` segment ranges of the other kept base backups.
    pub ranges: Vec<(u32, u64, u64)>,
    /// Set when the kept base backups cannot cover the whole window.
    pub shortfall: Option<String>,
}

impl KeepRule {
    /// Decides from the base backups that stay (any order).
    #[must_use]
    pub fn new(kept: &[BaseBackupInfo], window: Option<Duration>, now: Timestamp) -> Option<KeepRule> {
        let mut bases: Vec<&BaseBackupInfo> = kept.iter().collect();
        bases.sort_by_key(|b| (b.stop_time, b.stop_lsn));
        let newest = *bases.last()?;
        let (anchor, shortfall) = match window {
            None => (newest, None),
            Some(w) => {
                let opens = now - jiff::SignedDuration::try_from(w).unwrap_or(jiff::SignedDuration::MAX);
                match bases.iter().rev().find(|b| b.stop_time <= opens) {
                    Some(b) => (*b, None),
                    None => {
                        let oldest = bases[0];
                        let msg = format!(
                            "the point-in-time window asks to reach back to {}, but the oldest kept base backup ended at {}: keep older base backups (retention) to cover it",
                            opens.strftime("%Y-%m-%d %H:%M:%S"),
                            oldest.stop_time.strftime("%Y-%m-%d %H:%M:%S")
                        );
                        (oldest, Some(msg))
                    }
                }
            }
        };
        let ranges = bases
            .iter()
            .filter(|b| b.id != anchor.id)
            .map(|b| (b.timeline, b.start_segment().number, b.stop_segment().number))
            .collect();
        Some(KeepRule { continuous_from: anchor.start_segment(), anchor: anchor.id, anchor_stop: anchor.stop_time, ranges, shortfall })
    }

    /// Whether an archived file (its name within the component) is kept.
    #[must_use]
    pub fn keeps(&self, file: &str) -> bool {
        // A copy stored beside a name another writer took goes with its name.
        let file = base_name(file);
        let segment_name = match walname::classify(file) {
            Some(WalFile::Segment(s)) => s,
            Some(WalFile::Partial | WalFile::BackupHistory | WalFile::StreamPartial { .. } | WalFile::StreamPiece { .. }) => file[..24].to_owned(),
            // History files, and anything unrecognised: never removed here.
            Some(WalFile::History(_)) | None => return true,
        };
        let Some(s) = Segment::parse(&segment_name, walname::DEFAULT_SEGMENT_SIZE) else { return true };
        s.number >= self.continuous_from.number || self.ranges.iter().any(|&(tli, lo, hi)| s.timeline == tli && (lo..=hi).contains(&s.number))
    }
}

/// The WAL file name a stored object stands for: `<file>@<key>` is a copy
/// of `<file>` stored beside it (docs/FORMAT.md 10.1).
fn base_name(object: &str) -> &str {
    object.split_once('@').map_or(object, |(f, _)| f)
}

/// Whether `file` is a streamed piece (a byte range, or an older version's
/// whole copy) of a segment that is stored whole: no restore reads it
/// (FORMAT.md §10.2), so retention removes it even within what it keeps.
#[must_use]
pub fn superseded(file: &str, whole_segments: &BTreeSet<&str>) -> bool {
    match walname::classify(base_name(file)) {
        Some(WalFile::StreamPiece { segment, .. } | WalFile::StreamPartial { segment, .. }) => whole_segments.contains(segment.as_str()),
        _ => false,
    }
}

/// A span of time a point-in-time restore can reach (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// The times base backups can reach with the WAL `present` holds: for each
/// base backup whose WAL is unbroken from its start to its end, from its
/// end to the end of that unbroken run (on its timeline or a later one),
/// merged. `written` says when the server wrote a segment.
pub fn reachable(bases: &[BaseBackupInfo], present: &BTreeMap<u64, BTreeSet<u32>>, written: &mut dyn FnMut(Segment) -> Result<Option<Timestamp>>) -> Result<Vec<Window>> {
    let mut spans = Vec::new();
    for b in bases {
        let on = |n: u64| present.get(&n).and_then(|t| t.range(b.timeline..).next_back().copied());
        let mut n = b.start_segment().number;
        let mut last = None;
        while let Some(timeline) = on(n) {
            last = Some(Segment { timeline, number: n });
            n += 1;
        }
        let Some(last) = last.filter(|l| l.number >= b.stop_segment().number) else { continue };
        let to = written(last)?.unwrap_or(b.stop_time).max(b.stop_time);
        spans.push(Window { from: b.stop_time, to });
    }
    Ok(union(spans))
}

fn union(mut spans: Vec<Window>) -> Vec<Window> {
    spans.sort_by_key(|w| (w.from, w.to));
    let mut out: Vec<Window> = Vec::new();
    for w in spans {
        match out.last_mut() {
            Some(l) if w.from <= l.to => l.to = l.to.max(w.to),
            _ => out.push(w),
        }
    }
    out
}

/// The times in `a` that `b` does not cover (both merged, sorted), as
/// windows of some length: a base backup's own end point that stays
/// restorable splits nothing.
#[must_use]
pub fn subtract(a: &[Window], b: &[Window]) -> Vec<Window> {
    let mut out = Vec::new();
    for w in a {
        let mut cur = w.from;
        for c in b.iter().filter(|c| c.to >= w.from && c.from <= w.to) {
            if c.from > cur {
                out.push(Window { from: cur, to: c.from });
            }
            cur = cur.max(c.to);
        }
        if cur < w.to {
            out.push(Window { from: cur, to: w.to });
        }
    }
    out
}

/// What WAL retention did (or would do) for one component.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WalExpiry {
    pub component: String,
    pub dry_run: bool,
    /// First segment kept continuously (the start of the anchor base backup).
    pub continuous_from: Option<String>,
    pub anchor_backup: Option<Id>,
    pub anchor_stop: Option<Timestamp>,
    pub kept_files: usize,
    pub kept_bytes: u64,
    /// Every file this run does not keep: marked for deletion (now or by
    /// an earlier run); `prune` deletes them after the grace period.
    pub marked_files: Vec<String>,
    pub marked_bytes: u64,
    /// Of those, the ones this run marked (the rest were already).
    pub newly_marked: usize,
    /// Files an earlier run marked that this run keeps again: taken out of
    /// their marks (the undo of a mistaken forget).
    pub unmarked_files: Vec<String>,
    /// The mark this run wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<Id>,
    pub grace_secs: u64,
    /// Point-in-time windows no base backup can reach once the marked WAL
    /// is deleted, that one could reach before this run.
    pub closes: Vec<Window>,
    /// Windows this run makes reachable again (files unmarked).
    pub reopens: Vec<Window>,
    /// Why nothing was marked, or why the window is not fully covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The WAL marks (marks condemning no pack) that name files of
/// `component`, with those files.
fn wal_marks(repo: &Repository, component: Option<&str>) -> Result<Vec<(Mark, Vec<String>)>> {
    let marks = reprise_engine::prune::read_marks(repo)?.marks;
    Ok(marks
        .into_iter()
        .filter(|m| m.mark.packs.is_empty() && !m.mark.wal.is_empty())
        .filter_map(|m| {
            let files: Vec<String> = m.mark.wal.iter().filter(|o| component.is_none_or(|c| o.strip_prefix(c).is_some_and(|r| r.starts_with('/')))).cloned().collect();
            (!files.is_empty()).then_some((m, files))
        })
        .collect())
}

/// Whole segments named in `files`, by number, with their timelines.
fn whole_segments<'a>(files: impl Iterator<Item = &'a str>) -> BTreeMap<u64, BTreeSet<u32>> {
    let mut out: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for f in files {
        if let Some(WalFile::Segment(_)) = walname::classify(f)
            && let Some(s) = Segment::parse(f, walname::DEFAULT_SEGMENT_SIZE)
        {
            out.entry(s.number).or_default().insert(s.timeline);
        }
    }
    out
}

/// Applies WAL retention for `component`, given the base backups that
/// existed before `forget` (`before`) and those that stay (`kept`):
/// marks what is no longer kept, unmarks what is kept again, and says
/// which point-in-time windows that closes or reopens.
pub fn expire(repo: &Repository, component: &str, before: &[BaseBackupInfo], kept: &[BaseBackupInfo], window: Option<Duration>, grace: Duration, dry_run: bool) -> Result<WalExpiry> {
    if !dry_run {
        repo.require_full("marking archived WAL for deletion")?;
    }
    let mut out = WalExpiry { component: component.to_owned(), dry_run, grace_secs: grace.as_secs(), ..WalExpiry::default() };
    let prefix = format!("{component}/");
    let files: Vec<_> = repo
        .backend()
        .list(ObjectKind::Wal)
        .map_err(reprise_engine::Error::from)?
        .into_iter()
        .filter_map(|o| o.name.strip_prefix(&prefix).map(|f| (f.to_owned(), o.size)))
        .collect();
    let Some(rule) = KeepRule::new(kept, window, Timestamp::now()) else {
        out.kept_files = files.len();
        out.kept_bytes = files.iter().map(|f| f.1).sum();
        out.note = Some("no base backup: every archived WAL file is kept".into());
        return Ok(out);
    };
    out.continuous_from = Some(rule.continuous_from.name(walname::DEFAULT_SEGMENT_SIZE));
    out.anchor_backup = Some(rule.anchor);
    out.anchor_stop = Some(rule.anchor_stop);
    out.note.clone_from(&rule.shortfall);
    // A segment counts as stored whole, making its ranges superfluous, only
    // when a trusted writer stored it from this server: a segment name
    // another writer planted must not get the genuine ranges removed.
    if let Some(b) = kept.iter().max_by_key(|b| (b.stop_time, b.stop_lsn)) {
        crate::wal::expect_system_identifier(b.system_identifier);
    }
    let named_whole: BTreeSet<&str> = files.iter().map(|(f, _)| base_name(f)).filter(|f| matches!(walname::classify(f), Some(WalFile::Segment(_)))).collect();
    let with_ranges: BTreeSet<&str> = files.iter().filter(|(f, _)| superseded(f, &named_whole)).map(|(f, _)| &f[..24]).collect();
    let mut whole = BTreeSet::new();
    for segment in with_ranges {
        if crate::wal::trusted(repo, component, segment, false)?.is_some() {
            whole.insert(segment);
        }
    }
    let marks = wal_marks(repo, Some(component))?;
    let already: BTreeSet<&str> = marks.iter().flat_map(|(_, f)| f.iter()).filter_map(|o| o.strip_prefix(&prefix)).collect();
    let mut condemned: BTreeSet<&str> = BTreeSet::new();
    for (file, size) in &files {
        if rule.keeps(file) && !superseded(file, &whole) {
            out.kept_files += 1;
            out.kept_bytes += size;
        } else {
            condemned.insert(file);
            out.marked_bytes += size;
            out.marked_files.push(file.clone());
        }
    }
    out.newly_marked = condemned.iter().filter(|f| !already.contains(*f)).count();
    out.unmarked_files = files.iter().map(|(f, _)| f.as_str()).filter(|f| already.contains(f) && !condemned.contains(f)).map(str::to_owned).collect();

    // What restores reach before this run (the WAL no mark condemns, every
    // base backup there was) and after it (the WAL kept, the base backups
    // kept).
    let mut times: BTreeMap<Segment, Option<Timestamp>> = BTreeMap::new();
    let mut written = |s: Segment| -> Result<Option<Timestamp>> {
        if let Some(t) = times.get(&s) {
            return Ok(*t);
        }
        let t = crate::wal::header(repo, component, &s.name(walname::DEFAULT_SEGMENT_SIZE))?.map(|h| h.modified);
        times.insert(s, t);
        Ok(t)
    };
    let was = reachable(before, &whole_segments(files.iter().map(|(f, _)| f.as_str()).filter(|f| !already.contains(f))), &mut written)?;
    let will = reachable(kept, &whole_segments(files.iter().map(|(f, _)| f.as_str()).filter(|f| !condemned.contains(f))), &mut written)?;
    out.closes = subtract(&was, &will);
    out.reopens = subtract(&will, &was);
    if dry_run {
        return Ok(out);
    }
    // Kept again: each mark naming such a file is replaced by one without
    // it, with the mark's own time (the grace period does not restart).
    let unmark: BTreeSet<String> = out.unmarked_files.iter().map(|f| format!("{prefix}{f}")).collect();
    for (m, _) in &marks {
        if !m.mark.wal.iter().any(|o| unmark.contains(o)) {
            continue;
        }
        let rest: Vec<String> = m.mark.wal.iter().filter(|o| !unmark.contains(*o)).cloned().collect();
        if !rest.is_empty() {
            reprise_engine::prune::mark_wal(repo, rest, m.mark.time, Duration::from_secs(m.mark.grace_secs))?;
        }
        reprise_engine::prune::remove_mark(repo, &m.id)?;
    }
    let new: Vec<String> = condemned.iter().filter(|f| !already.contains(*f)).map(|f| format!("{prefix}{f}")).collect();
    if !new.is_empty() {
        out.mark = Some(reprise_engine::prune::mark_wal(repo, new, Timestamp::now(), grace)?.id);
    }
    Ok(out)
}

/// What the WAL sweep of a `prune` did (or would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WalSweep {
    pub dry_run: bool,
    /// WAL marks past their grace period, swept.
    pub swept_marks: usize,
    pub deleted_files: usize,
    pub deleted_bytes: u64,
    /// Marked files a base backup that exists now needs (its own range):
    /// kept, and taken out of the mark.
    pub rescued_files: Vec<String>,
    pub pending_marks: usize,
    pub pending_files: usize,
    pub next_sweep: Option<Timestamp>,
}

/// Whether `object` (`<component>/<file>`) lies in the own range (start to
/// stop segment, on its timeline) of a base backup in `bases`.
fn needed_by(file: &str, bases: &[BaseBackupInfo]) -> bool {
    let file = base_name(file);
    let segment = match walname::classify(file) {
        Some(WalFile::Segment(s)) => s,
        Some(WalFile::Partial | WalFile::BackupHistory | WalFile::StreamPartial { .. } | WalFile::StreamPiece { .. }) => file[..24].to_owned(),
        Some(WalFile::History(_)) | None => return true,
    };
    let Some(s) = Segment::parse(&segment, walname::DEFAULT_SEGMENT_SIZE) else { return true };
    bases.iter().any(|b| s.timeline == b.timeline && (b.start_segment().number..=b.stop_segment().number).contains(&s.number))
}

/// Phase 2 for WAL: deletes what the WAL marks whose grace period is over
/// condemn, except what a base backup existing now needs, then removes the
/// marks. Interrupted anywhere, the next prune finishes the job (a file
/// already gone is not an error; the mark goes last).
pub fn sweep(repo: &Repository, dry_run: bool) -> Result<WalSweep> {
    let mut out = WalSweep { dry_run, ..WalSweep::default() };
    let marks = wal_marks(repo, None)?;
    if marks.is_empty() {
        return Ok(out);
    }
    repo.require_full("deleting archived WAL")?;
    let now = Timestamp::now();
    let sizes: BTreeMap<String, u64> = repo.backend().list(ObjectKind::Wal).map_err(reprise_engine::Error::from)?.into_iter().map(|o| (o.name, o.size)).collect();
    // Listed after the marks were read: a base backup committed before
    // this point is seen, and one started later begins at newer WAL.
    let (snapshots, _) = repo.snapshots()?;
    let mut bases: BTreeMap<String, Vec<BaseBackupInfo>> = BTreeMap::new();
    for info in snapshots.iter().filter_map(crate::restore::base_backup_info_with_component) {
        bases.entry(info.0).or_default().push(info.1);
    }
    for (m, files) in marks {
        if m.due() > now {
            out.pending_marks += 1;
            out.pending_files += files.len();
            out.next_sweep = Some(out.next_sweep.map_or(m.due(), |t: Timestamp| t.min(m.due())));
            continue;
        }
        out.swept_marks += 1;
        for object in &files {
            let (component, file) = object.split_once('/').unwrap_or(("", object));
            if needed_by(file, bases.get(component).map_or(&[], Vec::as_slice)) {
                out.rescued_files.push(object.clone());
                continue;
            }
            let Some(size) = sizes.get(object) else { continue };
            out.deleted_files += 1;
            out.deleted_bytes += size;
            if !dry_run {
                match repo.backend().remove(ObjectKind::Wal, object) {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(reprise_engine::Error::from(e).into()),
                }
            }
        }
        if !dry_run {
            reprise_engine::prune::remove_mark(repo, &m.id)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walname::Lsn;

    const SEG: u64 = walname::DEFAULT_SEGMENT_SIZE;

    fn base(n: u8, timeline: u32, start_seg: u64, stop_seg: u64, stop_time: &str) -> BaseBackupInfo {
        let t: Timestamp = stop_time.parse().unwrap();
        BaseBackupInfo {
            id: Id([n; 32]),
            start_lsn: Lsn(start_seg * SEG + 40),
            stop_lsn: Lsn(stop_seg * SEG + 100),
            timeline,
            start_time: t,
            stop_time: t,
            system_identifier: 1,
            segment_size: SEG,
            bytes: 0,
        }
    }

    fn name(timeline: u32, number: u64) -> String {
        Segment { timeline, number }.name(SEG)
    }

    #[test]
    fn streamed_ranges_of_a_segment_stored_whole_are_superseded() {
        let whole: BTreeSet<&str> = ["000000010000000000000005"].into_iter().collect();
        assert!(superseded("000000010000000000000005.stream.00000000-00002000", &whole));
        assert!(superseded("000000010000000000000005.partial.1700000000000", &whole));
        assert!(!superseded("000000010000000000000006.stream.00000000-00002000", &whole), "the segment still being written needs its ranges");
        assert!(superseded("000000010000000000000005.stream.00000000-00002000@0123456789abcdef", &whole), "a range stored beside a taken name goes with its range");
        assert!(!superseded("000000010000000000000005", &whole));
        assert!(!superseded("000000010000000000000005.partial", &whole), "a promotion's partial segment is not a stream piece");
    }

    #[test]
    fn without_a_window_only_the_newest_and_each_backups_own_range() {
        let kept = [base(1, 1, 2, 3, "2026-11-01T00:00:00Z"), base(2, 1, 10, 10, "2026-11-10T00:00:00Z"), base(3, 1, 20, 21, "2026-11-20T00:00:00Z")];
        let rule = KeepRule::new(&kept, None, "2026-11-21T00:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(rule.anchor, Id([3; 32]));
        let kept_numbers: Vec<u64> = (0..30).filter(|n| rule.keeps(&name(1, *n))).collect();
        assert_eq!(kept_numbers, vec![2, 3, 10, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
        assert!(rule.keeps("00000002.history"), "history files stay");
        assert!(!rule.keeps(&format!("{}.partial", name(1, 5))));
        assert!(rule.keeps(&format!("{}.partial.1700000000000", name(1, 25))));
        assert!(!rule.keeps(&format!("{}@0123456789abcdef", name(1, 5))), "a copy beside a taken name expires with its name");
        assert!(rule.keeps(&format!("{}@0123456789abcdef", name(1, 25))));
        assert!(rule.keeps(&format!("{}.stream.00000000-00002000", name(1, 25))));
        assert!(!rule.keeps(&format!("{}.stream.00000000-00002000", name(1, 6))), "stream pieces go with their segment");
        assert!(!rule.keeps(&format!("{}.00000028.backup", name(1, 4))));
        assert!(rule.keeps("not-a-wal-name"), "unknown names are never removed");
    }

    #[test]
    fn the_window_anchors_on_the_newest_backup_that_ended_before_it_opened() {
        let kept = [base(1, 1, 2, 3, "2026-10-01T00:00:00Z"), base(2, 1, 10, 10, "2026-11-12T00:00:00Z"), base(3, 1, 20, 21, "2026-11-15T00:00:00Z"), base(4, 1, 30, 30, "2026-11-20T00:00:00Z")];
        let week = Duration::from_secs(7 * 86_400);
        let rule = KeepRule::new(&kept, Some(week), "2026-11-21T00:00:00Z".parse().unwrap()).unwrap();
        // The window opens 2026-11-14: base 2 (ended 11-12) is the anchor.
        assert_eq!(rule.anchor, Id([2; 32]));
        assert!(rule.shortfall.is_none());
        assert!(rule.keeps(&name(1, 2)) && rule.keeps(&name(1, 3)), "the monthly base backup keeps its own range");
        assert!(!rule.keeps(&name(1, 4)) && !rule.keeps(&name(1, 9)));
        assert!((10..40).all(|n| rule.keeps(&name(1, n))), "continuous from the anchor on");
        // A later timeline numbers on: kept too.
        assert!(rule.keeps(&name(2, 35)));
        // Older segments of another timeline are not in any range.
        assert!(!rule.keeps(&name(2, 3)));
    }

    #[test]
    fn a_window_older_than_every_backup_keeps_from_the_oldest_and_says_so() {
        let kept = [base(1, 1, 5, 6, "2026-11-19T00:00:00Z"), base(2, 1, 9, 9, "2026-11-20T00:00:00Z")];
        let rule = KeepRule::new(&kept, Some(Duration::from_secs(7 * 86_400)), "2026-11-21T00:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(rule.anchor, Id([1; 32]));
        assert!(rule.shortfall.as_deref().is_some_and(|s| s.contains("keep older base backups")));
        assert!(!rule.keeps(&name(1, 4)) && rule.keeps(&name(1, 5)));
        assert!(KeepRule::new(&[], None, Timestamp::now()).is_none(), "no base backup: no rule (nothing removed)");
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Bug (issue 16): with the first base backup held and `keep_last =
    /// 1`, forget removed the WAL between the base backups without saying
    /// that restores between them became impossible.
    #[test]
    fn removing_wal_between_base_backups_closes_the_window_between_them() {
        // Segment n is written on November n + 1; a base backup ends when
        // its stop segment is written.
        let day = |n: u64| at("2026-11-01T00:00:00Z") + jiff::SignedDuration::from_hours(24 * i64::try_from(n).unwrap());
        let written = |s: Segment| -> Result<Option<Timestamp>> { Ok(Some(day(s.number))) };
        let base_at = |n: u8, start: u64, stop: u64| BaseBackupInfo { stop_time: day(stop), start_time: day(start), ..base(n, 1, start, stop, "2026-11-01T00:00:00Z") };
        let (held, middle, newest) = (base_at(1, 2, 3), base_at(2, 10, 10), base_at(3, 20, 21));
        let all: BTreeMap<u64, BTreeSet<u32>> = (2..=30).map(|n| (n, BTreeSet::from([1]))).collect();
        let before = reachable(&[held.clone(), middle, newest.clone()], &all, &mut { written }).unwrap();
        assert_eq!(before, vec![Window { from: day(3), to: day(30) }]);
        let rule = KeepRule::new(&[held.clone(), newest.clone()], None, day(31)).unwrap();
        let kept: BTreeMap<u64, BTreeSet<u32>> = all.into_iter().filter(|(n, _)| rule.keeps(&name(1, *n))).collect();
        let after = reachable(&[held, newest], &kept, &mut { written }).unwrap();
        // The held backup reaches its own end only, the newest from its end on.
        assert_eq!(after, vec![Window { from: day(3), to: day(3) }, Window { from: day(21), to: day(30) }]);
        assert_eq!(subtract(&before, &after), vec![Window { from: day(3), to: day(21) }]);
        assert!(subtract(&after, &before).is_empty(), "nothing reopens");
    }

    #[test]
    fn a_gap_before_a_base_backups_end_makes_it_reach_nothing() {
        let b = base(1, 1, 2, 4, "2026-11-01T00:00:00Z");
        let present: BTreeMap<u64, BTreeSet<u32>> = [2u64, 4, 5].into_iter().map(|n| (n, BTreeSet::from([1]))).collect();
        assert!(reachable(&[b], &present, &mut |_| Ok(None)).unwrap().is_empty());
        let w = |a: &str, b: &str| Window { from: at(a), to: at(b) };
        assert_eq!(subtract(&[w("2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z")], &[w("2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z"), w("2026-11-05T00:00:00Z", "2026-11-10T00:00:00Z")]), vec![w("2026-11-01T00:00:00Z", "2026-11-05T00:00:00Z")]);
    }

    #[test]
    fn the_sweep_keeps_what_an_existing_base_backups_own_range_needs() {
        let bases = [base(1, 1, 5, 6, "2026-11-19T00:00:00Z")];
        assert!(needed_by(&name(1, 5), &bases) && needed_by(&name(1, 6), &bases));
        assert!(needed_by(&format!("{}.00000028.backup", name(1, 5)), &bases));
        assert!(!needed_by(&name(1, 4), &bases) && !needed_by(&name(1, 7), &bases));
        assert!(!needed_by(&name(2, 5), &bases), "another timeline's segment of that number");
        assert!(needed_by("00000002.history", &bases), "history files are never deleted");
        assert!(!needed_by(&name(1, 5), &[]), "no base backup: nothing needed");
    }
}
