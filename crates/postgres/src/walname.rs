//! WAL file names and log sequence numbers.
//!
//! A segment name is `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment
//! number split in a "log" and a segment-within-log part, in hex. With the
//! default 16 MiB segments there are 256 segments per log.

use std::fmt;
use std::str::FromStr;

/// A WAL location, as `pg_current_wal_lsn()` shows it (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s.split_once('/').ok_or_else(|| format!("'{s}' is not an LSN: write it as PostgreSQL does, e.g. 0/3000060"))?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| format!("'{s}' is not an LSN"))?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| format!("'{s}' is not an LSN"))?;
        if hi > 0xFFFF_FFFF || lo > 0xFFFF_FFFF {
            return Err(format!("'{s}' is not an LSN"));
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// A WAL segment: timeline and segment number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Segment {
    pub timeline: u32,
    pub number: u64,
}

impl Segment {
    #[must_use]
    pub fn of_lsn(timeline: u32, lsn: Lsn, segment_size: u64) -> Segment {
        Segment { timeline, number: lsn.0 / segment_size }
    }

    #[must_use]
    pub fn name(&self, segment_size: u64) -> String {
        let per_log = 0x1_0000_0000 / segment_size;
        format!("{:08X}{:08X}{:08X}", self.timeline, self.number / per_log, self.number % per_log)
    }

    /// Parses a plain segment name (no suffix).
    #[must_use]
    pub fn parse(name: &str, segment_size: u64) -> Option<Segment> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tli = u32::from_str_radix(&name[..8], 16).ok()?;
        let log = u64::from_str_radix(&name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
        let per_log = 0x1_0000_0000 / segment_size;
        if seg >= per_log {
            return None;
        }
        Some(Segment { timeline: tli, number: log * per_log + seg })
    }

    #[must_use]
    pub fn next(&self) -> Segment {
        Segment { timeline: self.timeline, number: self.number + 1 }
    }

    /// First LSN of the segment.
    #[must_use]
    pub fn start_lsn(&self, segment_size: u64) -> Lsn {
        Lsn(self.number * segment_size)
    }
}

/// What kind of WAL-archive file a name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalFile {
    Segment(String),
    /// `TTTTTTTT.history`
    History(u32),
    /// `<segment>.<offset>.backup`
    BackupHistory,
    /// `<segment>.partial` (from a promotion or streaming)
    Partial,
    /// `<segment>.partial.<millis>`: a whole copy of a segment being
    /// streamed, as `wal-stream` wrote them before it stored byte ranges
    /// (still read; the newest wins).
    StreamPartial { segment: String, millis: u64 },
    /// `<segment>.stream.<FROM>-<TO>`: bytes `FROM..TO` (offsets within the
    /// segment, 8 hex digits each) of a segment being streamed, stored as
    /// soon as they are received (docs/FORMAT.md §10.2).
    StreamPiece { segment: String, from: u32, to: u32 },
}

/// The name of the stored byte range `from..to` of `segment`.
#[must_use]
pub fn piece_name(segment: &str, from: u32, to: u32) -> String {
    format!("{segment}.stream.{from:08X}-{to:08X}")
}

/// Classifies a WAL-archive file name; `None` if it is not one PostgreSQL
/// would archive (which also keeps names safe as object keys).
#[must_use]
pub fn classify(name: &str) -> Option<WalFile> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if name.len() == 24 && hex(name) {
        return Some(WalFile::Segment(name.to_owned()));
    }
    if let Some(t) = name.strip_suffix(".history") {
        if t.len() == 8 && hex(t) {
            return u32::from_str_radix(t, 16).ok().map(WalFile::History);
        }
    }
    if let Some(rest) = name.strip_suffix(".backup") {
        if let Some((seg, off)) = rest.split_once('.') {
            if seg.len() == 24 && hex(seg) && off.len() == 8 && hex(off) {
                return Some(WalFile::BackupHistory);
            }
        }
    }
    if let Some(seg) = name.strip_suffix(".partial") {
        if seg.len() == 24 && hex(seg) {
            return Some(WalFile::Partial);
        }
    }
    if let Some((seg, range)) = name.split_once(".stream.") {
        let (from, to) = range.split_once('-')?;
        if seg.len() == 24 && hex(seg) && from.len() == 8 && hex(from) && to.len() == 8 && hex(to) {
            let (from, to) = (u32::from_str_radix(from, 16).ok()?, u32::from_str_radix(to, 16).ok()?);
            return (from < to).then(|| WalFile::StreamPiece { segment: seg.to_owned(), from, to });
        }
        return None;
    }
    if let Some((seg, millis)) = name.split_once(".partial.") {
        if seg.len() == 24 && hex(seg) && !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()) {
            return millis.parse().ok().map(|millis| WalFile::StreamPartial { segment: seg.to_owned(), millis });
        }
    }
    None
}

/// One line of a timeline history file: timeline `parent` ended at `switch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub parent: u32,
    pub switch: Lsn,
}

/// Parses a `.history` file (lines `parentTLI <tab> switchpoint <tab> reason`).
#[must_use]
pub fn parse_history(text: &str) -> Vec<HistoryEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let parent = f.next()?.parse().ok()?;
            let switch = f.next()?.parse().ok()?;
            Some(HistoryEntry { parent, switch })
        })
        .collect()
}

/// Facts from a segment's first (long) page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPageHeader {
    pub timeline: u32,
    pub page_address: u64,
    pub system_identifier: u64,
    pub segment_size: u32,
}

/// Reads the long page header at the start of a WAL segment (layout of
/// `XLogLongPageHeaderData` in PostgreSQL's `xlog_internal.h`).
#[must_use]
pub fn long_page_header(segment: &[u8]) -> Option<LongPageHeader> {
    if segment.len() < 40 {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(segment[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(segment[i..i + 8].try_into().expect("8 bytes"));
    let info = u16::from_le_bytes([segment[2], segment[3]]);
    const XLP_LONG_HEADER: u16 = 0x0002;
    if info & XLP_LONG_HEADER == 0 {
        return None;
    }
    Some(LongPageHeader { timeline: u32_at(4), page_address: u64_at(8), system_identifier: u64_at(24), segment_size: u32_at(32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lsns() {
        let s = Segment::parse("000000010000000A000000FF", DEFAULT_SEGMENT_SIZE).unwrap();
        assert_eq!(s, Segment { timeline: 1, number: 10 * 256 + 255 });
        assert_eq!(s.next().name(DEFAULT_SEGMENT_SIZE), "000000010000000B00000000");
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Segment::of_lsn(2, lsn, DEFAULT_SEGMENT_SIZE).name(DEFAULT_SEGMENT_SIZE), "0000000200000016000000B3");
        assert_eq!(classify("00000002.history"), Some(WalFile::History(2)));
        assert_eq!(classify("000000010000000000000002.00000028.backup"), Some(WalFile::BackupHistory));
        assert_eq!(classify("000000010000000000000002.partial"), Some(WalFile::Partial));
        assert_eq!(classify("../etc/passwd"), None);
        let piece = piece_name("000000010000000000000003", 0x2000, 0xA2C8);
        assert_eq!(piece, "000000010000000000000003.stream.00002000-0000A2C8");
        assert_eq!(classify(&piece), Some(WalFile::StreamPiece { segment: "000000010000000000000003".into(), from: 0x2000, to: 0xA2C8 }));
        assert_eq!(classify("000000010000000000000003.stream.0000A2C8-00002000"), None, "an empty or reversed range is not a piece");
        assert_eq!(classify("000000010000000000000003.stream.00002000-A2C8"), None);
        assert_eq!(parse_history("1\t0/3000158\tno recovery target specified\n"), vec![HistoryEntry { parent: 1, switch: Lsn(0x300_0158) }]);
    }
}
