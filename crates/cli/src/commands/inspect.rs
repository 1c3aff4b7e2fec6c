//! `snapshots`, `ls`, `diff`, `stats`.

use anyhow::Result;
use reprise_engine::diff::Change;
use reprise_engine::format::tree::NodeKind;
use reprise_engine::walk::{self, Visit};
use reprise_engine::MasterIndex;

use crate::args::{DiffArgs, LsArgs, SnapshotsArgs};
use crate::commands::{bytes, find_snapshot};
use crate::context::Context;
use crate::exit;
use crate::output::{bytes_if_not_utf8, count, escape_name};

pub fn snapshots(ctx: &Context, args: &SnapshotsArgs) -> Result<()> {
    let repo = ctx.open(None)?;
    let (all, bad) = repo.snapshots()?;
    let keep = |h: &reprise_engine::format::snapshot::SnapshotHeader| {
        args.component.as_ref().is_none_or(|c| &h.component == c) && args.host.as_ref().is_none_or(|x| &h.host == x)
    };
    let list: Vec<_> = all.into_iter().filter(|s| keep(&s.header)).collect();
    // A damaged snapshot is listed too (it may be the newest), unless its
    // header still authenticates and says it is outside the filter.
    let damaged: Vec<(String, String, Option<reprise_engine::format::snapshot::SnapshotHeader>)> = bad
        .into_iter()
        .map(|(object, e)| {
            let header = repo.damaged_snapshot_header(&object);
            let reason = match e {
                reprise_engine::Error::Damaged { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            (object, reason, header)
        })
        .filter(|(_, _, h)| h.as_ref().is_none_or(keep))
        .collect();
    if ctx.json() {
        let mut docs: Vec<serde_json::Value> = list.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        for (object, reason, header) in &damaged {
            let mut v = serde_json::json!({ "id": object.rsplit('/').next(), "object": object, "damaged": reason });
            if let (Some(h), Some(map)) = (header, v.as_object_mut()) {
                map.insert("time".into(), serde_json::to_value(h.time)?);
                map.insert("component".into(), serde_json::to_value(&h.component)?);
                map.insert("host".into(), serde_json::to_value(&h.host)?);
            }
            docs.push(v);
        }
        ctx.print_json(&docs)?;
    } else {
        ctx.say(format!("{:<10} {:<20} {:<16} {:<20} {:>10} {:>8}  tags", "id", "time (UTC)", "host", "component", "size", "files"));
        for s in &list {
            let h = &s.header;
            ctx.say(format!(
                "{:<10} {:<20} {:<16} {:<20} {:>10} {:>8}  {}",
                s.id.short(),
                h.time.strftime("%Y-%m-%d %H:%M:%S"),
                h.host,
                h.component,
                bytes(h.summary.bytes),
                h.summary.files,
                h.tags.join(",")
            ));
        }
        // Printed even with --quiet: it is why the exit code is not 0.
        for (object, reason, header) in &damaged {
            let when = header.as_ref().map(|h| format!(" (taken {} on {}, {})", h.time.strftime("%Y-%m-%d %H:%M:%S"), h.host, h.component)).unwrap_or_default();
            outln!("DAMAGED {object}{when}: {reason}");
        }
        ctx.say(count(list.len(), "snapshot", "snapshots"));
    }
    if damaged.is_empty() {
        return Ok(());
    }
    Err(exit::with_code(
        exit::DAMAGED,
        format!(
            "{} cannot be read (listed as DAMAGED): the others are usable by ID; `reprise check` reports all damage, and a copy repository may hold an intact one",
            count(damaged.len(), "snapshot", "snapshots")
        ),
    ))
}

#[derive(serde::Serialize)]
struct LsEntry {
    /// The path as text (bytes that are not UTF-8 replaced by U+FFFD) ...
    path: String,
    /// ... and, only then, the exact bytes in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    #[serde(rename = "type")]
    kind: NodeKind,
    mode: u32,
    size: u64,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_bytes: Option<String>,
    #[serde(skip)]
    raw_path: Vec<u8>,
    #[serde(skip)]
    raw_target: Option<Vec<u8>>,
}

pub fn ls(ctx: &Context, args: &LsArgs) -> Result<()> {
    let repo = ctx.open(None)?;
    let snap = find_snapshot(&repo, &args.snapshot, None)?;
    let body = repo.snapshot_body(&snap.id)?;
    let (index, _) = MasterIndex::load(&repo)?;
    let prefix: Vec<u8> = args.path.as_deref().unwrap_or("").trim_matches('/').as_bytes().to_vec();
    let mut entries = Vec::new();
    walk::walk(&repo, &index, &body.tree, &mut |path, node| {
        let below = |a: &[u8], b: &[u8]| a.len() > b.len() && a.starts_with(b) && a[b.len()] == b'/';
        let inside = prefix.is_empty() || path == prefix.as_slice() || below(path, &prefix);
        let on_way = below(&prefix, path);
        if !inside && !on_way {
            return Ok(Visit::Skip);
        }
        if inside {
            let mtime = jiff::Timestamp::from_nanosecond(i128::from(node.mtime_ns)).map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default();
            let mut raw_path = Vec::with_capacity(path.len() + 1);
            raw_path.push(b'/');
            raw_path.extend_from_slice(path);
            entries.push(LsEntry {
                path: String::from_utf8_lossy(&raw_path).into_owned(),
                path_bytes: bytes_if_not_utf8(&raw_path),
                kind: node.kind,
                mode: node.mode,
                size: node.size,
                mtime,
                target: node.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
                target_bytes: node.target.as_deref().and_then(bytes_if_not_utf8),
                raw_path,
                raw_target: node.target.clone(),
            });
        }
        Ok(Visit::Descend)
    })?;
    if ctx.json() {
        return ctx.print_json(&entries);
    }
    for e in entries {
        // Names are bytes: escaped, so that each entry is one line and
        // nothing is lost (`\n`, `\xff`, `\\`).
        let path = escape_name(&e.raw_path);
        if args.long {
            let t = match e.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::File => '-',
                _ => '?',
            };
            let link = e.raw_target.map(|t| format!(" -> {}", escape_name(&t))).unwrap_or_default();
            ctx.say(format!("{t}{:04o} {:>12} {} {path}{link}", e.mode, e.size, e.mtime));
        } else {
            ctx.say(path);
        }
    }
    Ok(())
}

pub fn diff(ctx: &Context, args: &DiffArgs) -> Result<()> {
    let repo = ctx.open(None)?;
    let a = find_snapshot(&repo, &args.from, None)?;
    let b = find_snapshot(&repo, &args.to, None)?;
    let (index, _) = MasterIndex::load(&repo)?;
    let ta = repo.snapshot_body(&a.id)?.tree;
    let tb = repo.snapshot_body(&b.id)?.tree;
    let changes = reprise_engine::diff::diff(&repo, &index, &ta, &tb)?;
    if ctx.json() {
        let docs: Vec<serde_json::Value> = changes
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c)?;
                if let (Some(b), Some(map)) = (bytes_if_not_utf8(&c.raw_path), v.as_object_mut()) {
                    map.insert("path_bytes".into(), serde_json::Value::String(b));
                }
                Ok(v)
            })
            .collect::<Result<_, serde_json::Error>>()?;
        return ctx.print_json(&docs);
    }
    for c in &changes {
        ctx.say(format!("{} {}{}", c.change.symbol(), escape_name(&c.raw_path), if c.dir { "/" } else { "" }));
    }
    let count = |ch| changes.iter().filter(|c| c.change == ch).count();
    ctx.say(format!(
        "{} added, {} removed, {} modified, {} metadata only",
        count(Change::Added),
        count(Change::Removed),
        count(Change::Modified),
        count(Change::Metadata)
    ));
    Ok(())
}

pub fn stats(ctx: &Context) -> Result<()> {
    let repo = ctx.open(None)?;
    let s = reprise_engine::stats::repository_stats(&repo)?;
    if ctx.json() {
        return ctx.print_json(&s);
    }
    ctx.say(format!("snapshots:        {}", s.snapshots));
    ctx.say(format!("packs:            {} ({})", s.packs, bytes(s.stored_bytes)));
    ctx.say(format!("blobs:            {} data, {} tree ({} unique plaintext)", s.data_blobs, s.tree_blobs, bytes(s.unique_bytes)));
    ctx.say(format!("restore size:     {} (all snapshots)", bytes(s.restore_bytes)));
    ctx.say(format!("space saving:     {:.2}x (deduplication and compression)", s.ratio));
    Ok(())
}
