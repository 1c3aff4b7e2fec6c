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
use crate::output::count;

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
    path: String,
    #[serde(rename = "type")]
    kind: NodeKind,
    mode: u32,
    size: u64,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

pub fn ls(ctx: &Context, args: &LsArgs) -> Result<()> {
    let repo = ctx.open(None)?;
    let snap = find_snapshot(&repo, &args.snapshot, None)?;
    let body = repo.snapshot_body(&snap.id)?;
    let (index, _) = MasterIndex::load(&repo)?;
    let prefix = args.path.as_deref().unwrap_or("").trim_matches('/').to_owned();
    let mut entries = Vec::new();
    walk::walk(&repo, &index, &body.tree, &mut |path, node| {
        let p = String::from_utf8_lossy(path).into_owned();
        let inside = prefix.is_empty() || p == prefix || p.starts_with(&format!("{prefix}/"));
        let on_way = prefix.starts_with(&format!("{p}/"));
        if !inside && !on_way {
            return Ok(Visit::Skip);
        }
        if inside {
            let mtime = jiff::Timestamp::from_nanosecond(i128::from(node.mtime_ns)).map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default();
            entries.push(LsEntry {
                path: format!("/{p}"),
                kind: node.kind,
                mode: node.mode,
                size: node.size,
                mtime,
                target: node.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
            });
        }
        Ok(Visit::Descend)
    })?;
    if ctx.json() {
        return ctx.print_json(&entries);
    }
    for e in entries {
        if args.long {
            let t = match e.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::File => '-',
                _ => '?',
            };
            let link = e.target.map(|t| format!(" -> {t}")).unwrap_or_default();
            ctx.say(format!("{t}{:04o} {:>12} {} {}{link}", e.mode, e.size, e.mtime, e.path));
        } else {
            ctx.say(e.path);
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
        return ctx.print_json(&changes);
    }
    for c in &changes {
        ctx.say(format!("{} {}{}", c.change.symbol(), c.path, if c.dir { "/" } else { "" }));
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
