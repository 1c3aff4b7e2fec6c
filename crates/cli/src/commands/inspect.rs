//! `snapshots`, `ls`, `diff`, `stats`.

use anyhow::Result;
use reprise_engine::diff::Change;
use reprise_engine::format::tree::NodeKind;
use reprise_engine::walk::{self, Visit};
use reprise_engine::MasterIndex;

use crate::args::{DiffArgs, LsArgs, SnapshotsArgs};
use crate::commands::{bytes, find_snapshot};
use crate::context::Context;

pub fn snapshots(ctx: &Context, args: &SnapshotsArgs) -> Result<()> {
    let repo = ctx.open(None)?;
    let (all, bad) = repo.snapshots()?;
    let list: Vec<_> = all
        .into_iter()
        .filter(|s| args.component.as_ref().is_none_or(|c| &s.header.component == c))
        .filter(|s| args.host.as_ref().is_none_or(|h| &s.header.host == h))
        .collect();
    for (name, e) in &bad {
        match e {
            reprise_engine::Error::Untrusted { .. } => eprintln!("reprise: warning: {e}"),
            _ => eprintln!("reprise: warning: {name} unreadable: {e}"),
        }
    }
    for s in &list {
        if let Some(w) = &s.warning {
            eprintln!("reprise: warning: snapshot {} {w}: it is never taken as `latest`", s.id.short());
        }
    }
    if ctx.json() {
        return ctx.print_json(&list);
    }
    ctx.say(format!("{:<10} {:<20} {:<16} {:<20} {:>10} {:>8}  {:<14} tags", "id", "time (UTC)", "host", "component", "size", "files", "writer"));
    for s in &list {
        let h = &s.header;
        ctx.say(format!(
            "{:<10} {:<20} {:<16} {:<20} {:>10} {:>8}  {:<14} {}",
            s.id.short(),
            h.time.strftime("%Y-%m-%d %H:%M:%S"),
            h.host,
            h.component,
            bytes(h.summary.bytes),
            h.summary.files,
            s.writer.short(),
            h.tags.join(",")
        ));
    }
    ctx.say(format!("{} snapshot(s)", list.len()));
    Ok(())
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
    repo.require_full("listing a snapshot's contents")?;
    let snap = find_snapshot(&repo, &args.snapshot, None)?;
    let body = repo.snapshot_body(&snap.id)?;
    let (index, _) = MasterIndex::load(&repo, &snap.domain)?;
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
    repo.require_full("comparing snapshots")?;
    let a = find_snapshot(&repo, &args.from, None)?;
    let b = find_snapshot(&repo, &args.to, None)?;
    let (index_a, _) = MasterIndex::load(&repo, &a.domain)?;
    let index_b = if b.domain == a.domain { None } else { Some(MasterIndex::load(&repo, &b.domain)?.0) };
    let ta = repo.snapshot_body(&a.id)?.tree;
    let tb = repo.snapshot_body(&b.id)?.tree;
    if index_b.is_some() {
        eprintln!("reprise: note: the two snapshots were written by different writers (domains {} and {}): files are compared by size and modification time", a.domain, b.domain);
    }
    let changes = reprise_engine::diff::diff(&repo, &index_a, index_b.as_ref().unwrap_or(&index_a), &ta, &tb)?;
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
