//! Finding the oldest commit in a stretch of WAL.
//!
//! The recovery point a component achieves is the age of the oldest
//! *committed* change the repository does not hold yet. Counting every WAL
//! byte past the stored end would be wrong on a quiet server: PostgreSQL
//! writes records on its own (`RUNNING_XACTS` every 15 s once there was
//! activity, checkpoints), which carry no data, and `archive_timeout` does
//! not switch a segment for them — an idle night would read as a growing
//! RPO. So the WAL the repository lacks is read (from the server's
//! `pg_wal`) and walked record by record until the first transaction
//! commit; its timestamp is the answer, and no commit means nothing is at
//! risk.
//!
//! Only what is needed to walk records is decoded (layout of PostgreSQL
//! 15's `xlog_internal.h` and `xlogrecord.h`): page headers (short, and long
//! at a segment start), records crossing pages (`xlp_rem_len`), the
//! `XLOG_SWITCH` that ends a segment early, and the main data of
//! `XLOG_XACT_COMMIT` / `COMMIT_PREPARED` records, whose first field is the
//! commit time. No I/O here: the caller hands over segment bytes.

use crate::walname::Lsn;

const PAGE: u64 = 8192;
const SHORT_HEADER: u64 = 24;
const LONG_HEADER: u64 = 40;
const RECORD_HEADER: usize = 24;
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
const RM_XLOG_ID: u8 = 0;
const RM_XACT_ID: u8 = 1;
const XLOG_SWITCH: u8 = 0x40;
const XLOG_XACT_OPMASK: u8 = 0x70;
const XLOG_XACT_COMMIT: u8 = 0x00;
const XLOG_XACT_COMMIT_PREPARED: u8 = 0x30;
const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
const XLR_BLOCK_ID_ORIGIN: u8 = 253;
const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// What a stretch of WAL holds, as far as data at risk goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The first commit whose record ends after the start of the stretch.
    Commit { end: Lsn, time: jiff::Timestamp },
    /// No commit record ends in the stretch: nothing committed is at risk.
    NoCommit,
    /// The WAL could not be walked (a segment missing, or bytes that are
    /// not what they should be): the caller falls back to a bound.
    Unreadable(String),
}

fn align8(x: u64) -> u64 {
    (x + 7) & !7
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    b.get(i..i + 2).map(|s| u16::from_le_bytes(s.try_into().expect("2 bytes")))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// Segment bytes by segment number (one timeline); `None` when unavailable.
pub trait SegmentSource {
    fn segment(&mut self, number: u64) -> Option<std::sync::Arc<Vec<u8>>>;
}

impl<F: FnMut(u64) -> Option<std::sync::Arc<Vec<u8>>>> SegmentSource for F {
    fn segment(&mut self, number: u64) -> Option<std::sync::Arc<Vec<u8>>> {
        self(number)
    }
}

/// Reads WAL by position, across pages and segments.
struct Reader<'a, S: SegmentSource> {
    source: &'a mut S,
    segment_size: u64,
    cached: Option<(u64, std::sync::Arc<Vec<u8>>)>,
}

impl<S: SegmentSource> Reader<'_, S> {
    fn bytes(&mut self, lsn: u64, len: usize) -> Result<Vec<u8>, String> {
        let number = lsn / self.segment_size;
        if self.cached.as_ref().is_none_or(|(n, _)| *n != number) {
            let data = self.source.segment(number).ok_or_else(|| format!("WAL segment {number:X} is not available"))?;
            self.cached = Some((number, data));
        }
        let (_, data) = self.cached.as_ref().expect("just cached");
        let off = (lsn % self.segment_size) as usize;
        data.get(off..off + len).map(<[u8]>::to_vec).ok_or_else(|| format!("WAL segment {number:X} is shorter than expected"))
    }

    fn header_size(&self, page_start: u64) -> u64 {
        if page_start.is_multiple_of(self.segment_size) { LONG_HEADER } else { SHORT_HEADER }
    }

    /// Checks the page header at `page_start` names that page.
    fn check_page(&mut self, page_start: u64) -> Result<(u16, u32), String> {
        let h = self.bytes(page_start, 20)?;
        let info = u16_at(&h, 2).expect("20 bytes");
        let addr = u64_at(&h, 8).expect("20 bytes");
        let rem = u32_at(&h, 16).expect("20 bytes");
        if addr != page_start {
            return Err(format!("the page at {} is not written yet (it holds {})", Lsn(page_start), Lsn(addr)));
        }
        Ok((info, rem))
    }

    /// Reads `len` bytes of a record starting at `at`, skipping page
    /// headers; returns them and the position after the last byte.
    fn record_bytes(&mut self, mut at: u64, len: usize) -> Result<(Vec<u8>, u64), String> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            if at.is_multiple_of(PAGE) {
                self.check_page(at)?;
                at += self.header_size(at);
            }
            let page_end = (at / PAGE + 1) * PAGE;
            let take = ((page_end - at) as usize).min(len - out.len());
            out.extend_from_slice(&self.bytes(at, take)?);
            at += take as u64;
        }
        Ok((out, at))
    }
}

/// The first commit in WAL whose record ends after `from` and before
/// `to` (the server's write position), walking from the start of `from`'s
/// segment (or the one before, when a record crosses into it).
pub fn first_commit(source: &mut impl SegmentSource, segment_size: u64, from: Lsn, to: Lsn) -> Scan {
    match walk(source, segment_size, from, to) {
        Ok(s) => s,
        Err(e) => Scan::Unreadable(e),
    }
}

fn walk(source: &mut impl SegmentSource, segment_size: u64, from: Lsn, to: Lsn) -> Result<Scan, String> {
    if to <= from {
        return Ok(Scan::NoCommit);
    }
    let mut r = Reader { source, segment_size, cached: None };
    let mut seg_start = from.0 - from.0 % segment_size;
    // A record continued from the previous segment could be a commit that
    // ends after `from`: walk from the previous segment then.
    let (info, _) = r.check_page(seg_start)?;
    if info & XLP_FIRST_IS_CONTRECORD != 0 {
        seg_start = seg_start.checked_sub(segment_size).ok_or("the first segment starts with a continuation")?;
        r.check_page(seg_start)?;
    }
    let mut at = first_record(&mut r, seg_start)?;
    loop {
        if at.is_multiple_of(PAGE) {
            r.check_page(at)?;
            at += r.header_size(at);
        }
        if at >= to.0 {
            return Ok(Scan::NoCommit);
        }
        let head = r.bytes(at, 4)?;
        let total = u32_at(&head, 0).expect("4 bytes") as usize;
        if total < RECORD_HEADER {
            // Zeros past the last record: the end of what is written.
            return Ok(Scan::NoCommit);
        }
        let (record, end) = r.record_bytes(at, total)?;
        if end > to.0 {
            // Not wholly written yet: not committed either.
            return Ok(Scan::NoCommit);
        }
        let (xl_info, rmid) = (record[16], record[17]);
        if end > from.0 && rmid == RM_XACT_ID && matches!(xl_info & XLOG_XACT_OPMASK, XLOG_XACT_COMMIT | XLOG_XACT_COMMIT_PREPARED) {
            let time = commit_time(&record).ok_or_else(|| format!("the commit record at {} cannot be decoded", Lsn(at)))?;
            return Ok(Scan::Commit { end: Lsn(end), time });
        }
        at = if rmid == RM_XLOG_ID && xl_info & 0xF0 == XLOG_SWITCH {
            // The rest of the segment is padding.
            (end / segment_size + 1) * segment_size
        } else {
            align8(end)
        };
    }
}

/// Where the first record that starts in the segment at `seg_start` begins.
fn first_record<S: SegmentSource>(r: &mut Reader<'_, S>, seg_start: u64) -> Result<u64, String> {
    let mut page = seg_start;
    loop {
        let (info, rem) = r.check_page(page)?;
        let header = r.header_size(page);
        if info & XLP_FIRST_IS_CONTRECORD == 0 {
            return Ok(page + header);
        }
        if u64::from(rem) < PAGE - header {
            return Ok(align8(page + header + u64::from(rem)));
        }
        // The continued record covers this whole page.
        page += PAGE;
    }
}

/// The commit time in an `XLOG_XACT_COMMIT` record: the first field of its
/// main data, which comes last in the record.
fn commit_time(record: &[u8]) -> Option<jiff::Timestamp> {
    let mut i = RECORD_HEADER;
    let main_len = loop {
        match *record.get(i)? {
            XLR_BLOCK_ID_DATA_SHORT => break usize::from(*record.get(i + 1)?),
            XLR_BLOCK_ID_DATA_LONG => break u32_at(record, i + 1)? as usize,
            XLR_BLOCK_ID_ORIGIN => i += 3,
            XLR_BLOCK_ID_TOPLEVEL_XID => i += 5,
            // Commit records reference no blocks.
            _ => return None,
        }
    };
    let main = record.get(record.len().checked_sub(main_len)?..)?;
    let micros = i64::from_le_bytes(main.get(..8)?.try_into().ok()?);
    jiff::Timestamp::from_microsecond(micros.checked_add(PG_EPOCH_OFFSET_MICROS)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const SEG: u64 = 16 * 1024 * 1024;

    /// Builds WAL the way PostgreSQL lays it out: records MAXALIGNed,
    /// split across pages after each page header.
    struct Builder {
        seg: Vec<u8>,
        at: u64,
    }

    impl Builder {
        fn new() -> Builder {
            let mut b = Builder { seg: vec![0; SEG as usize], at: 0 };
            b.page_header(0, 0, 0);
            b.at = LONG_HEADER;
            b
        }

        fn page_header(&mut self, page: u64, info: u16, rem: u32) {
            let p = page as usize;
            self.seg[p..p + 2].copy_from_slice(&0xD110u16.to_le_bytes());
            let long = if page == 0 { 0x0002 } else { 0 };
            self.seg[p + 2..p + 4].copy_from_slice(&(info | long).to_le_bytes());
            self.seg[p + 4..p + 8].copy_from_slice(&1u32.to_le_bytes());
            self.seg[p + 8..p + 16].copy_from_slice(&page.to_le_bytes());
            self.seg[p + 16..p + 20].copy_from_slice(&rem.to_le_bytes());
        }

        /// Appends a record; returns its start and end.
        fn record(&mut self, rmid: u8, info: u8, main: &[u8]) -> (u64, u64) {
            let mut rec = vec![0u8; RECORD_HEADER];
            if main.len() < 256 {
                rec.extend_from_slice(&[XLR_BLOCK_ID_DATA_SHORT, main.len() as u8]);
            } else {
                rec.push(XLR_BLOCK_ID_DATA_LONG);
                rec.extend_from_slice(&(main.len() as u32).to_le_bytes());
            }
            rec.extend_from_slice(main);
            let total = rec.len() as u32;
            rec[0..4].copy_from_slice(&total.to_le_bytes());
            rec[16] = info;
            rec[17] = rmid;
            let start = self.at;
            let mut left = &rec[..];
            while !left.is_empty() {
                if self.at.is_multiple_of(PAGE) {
                    let rem = left.len() as u32;
                    let cont = if left.len() == rec.len() { 0 } else { XLP_FIRST_IS_CONTRECORD };
                    self.page_header(self.at, cont, if cont == 0 { 0 } else { rem });
                    self.at += if self.at == 0 { LONG_HEADER } else { SHORT_HEADER };
                }
                let room = (PAGE - self.at % PAGE) as usize;
                let take = room.min(left.len());
                let a = self.at as usize;
                self.seg[a..a + take].copy_from_slice(&left[..take]);
                self.at += take as u64;
                left = &left[take..];
            }
            let end = self.at;
            self.at = align8(self.at);
            if self.at.is_multiple_of(PAGE) && self.at < SEG {
                self.page_header(self.at, 0, 0);
            }
            (start, end)
        }

        fn commit(&mut self, unix_micros: i64) -> (u64, u64) {
            let mut main = (unix_micros - PG_EPOCH_OFFSET_MICROS).to_le_bytes().to_vec();
            main.extend_from_slice(&[0u8; 8]);
            self.record(RM_XACT_ID, XLOG_XACT_COMMIT, &main)
        }

        fn running_xacts(&mut self) -> (u64, u64) {
            self.record(8, 0x10, &[0u8; 24])
        }

        fn source(self) -> impl FnMut(u64) -> Option<Arc<Vec<u8>>> {
            let seg = Arc::new(self.seg);
            move |n| (n == 0).then(|| Arc::clone(&seg))
        }
    }

    #[test]
    fn running_xacts_after_the_stored_end_is_not_data_at_risk() {
        let mut b = Builder::new();
        let (_, commit_end) = b.commit(1_700_000_000_000_000);
        let (_, idle_end) = b.running_xacts();
        let (_, idle_end2) = b.running_xacts();
        assert!(idle_end2 > idle_end);
        let mut src = b.source();
        // The commit is stored; only RUNNING_XACTS follows.
        assert_eq!(first_commit(&mut src, SEG, Lsn(commit_end), Lsn(idle_end2)), Scan::NoCommit);
        // The commit is not stored (the stored end falls inside it).
        match first_commit(&mut src, SEG, Lsn(commit_end - 1), Lsn(idle_end2)) {
            Scan::Commit { end, time } => {
                assert_eq!(end, Lsn(commit_end));
                assert_eq!(time.as_microsecond(), 1_700_000_000_000_000);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_crossing_pages_are_followed() {
        let mut b = Builder::new();
        // Fill the first page to 16 bytes from its end, then a commit that
        // crosses into the second.
        let need = (PAGE - 16 - b.at) as usize;
        let (_, filler_end) = b.record(8, 0x10, &vec![7u8; need - 29]);
        assert_eq!(filler_end, PAGE - 16);
        let (start, end) = b.commit(1_750_000_000_123_456);
        assert!(start / PAGE < end / PAGE, "the commit must cross a page for this test ({start}..{end})");
        let (_, after) = b.running_xacts();
        let mut src = b.source();
        assert_eq!(first_commit(&mut src, SEG, Lsn(filler_end), Lsn(after)), Scan::Commit { end: Lsn(end), time: jiff::Timestamp::from_microsecond(1_750_000_000_123_456).unwrap() });
        // The server has not written the whole commit record yet: not committed.
        assert_eq!(first_commit(&mut src, SEG, Lsn(filler_end), Lsn(end - 1)), Scan::NoCommit);
    }

    #[test]
    fn a_page_not_written_yet_is_unreadable_not_empty() {
        let mut b = Builder::new();
        let (_, end) = b.running_xacts();
        let mut seg = b.seg.clone();
        // A stale page address, as in a recycled segment.
        seg[8..16].copy_from_slice(&(5 * SEG).to_le_bytes());
        let seg = Arc::new(seg);
        let mut src = move |n: u64| (n == 0).then(|| Arc::clone(&seg));
        assert!(matches!(first_commit(&mut src, SEG, Lsn(0), Lsn(end)), Scan::Unreadable(_)));
    }
}
