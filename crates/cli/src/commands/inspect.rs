//! `snapshots`, `ls`, `diff`, `stats`.

use anyhow::Result;
use reprise_engine::diff::Change;
use reprise_engine::format::tree::NodeKind;
use reprise_ops::Verdict;
use reprise_ops::inspect::{self, DamagedSnapshot, Entry, SnapshotFilter};

use crate::args::{DiffArgs, LsArgs, SnapshotsArgs};
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;
use crate::output::{bytes_if_not_utf8, count, escape_name};

pub fn snapshots(ctx: &Context, args: &SnapshotsArgs) -> Result<()> {
    let listed = inspect::snapshots(&ctx.ws, &SnapshotFilter { component: args.component.clone(), host: args.host.clone() })?;
    let (list, damaged) = (&listed.snapshots, &listed.damaged);
    for why in &listed.untrusted {
        errln!("reprise: warning: {why}");
    }
    for s in list {
        if let Some(w) = &s.warning {
            errln!("reprise: warning: snapshot {} {w}: it is never taken as `latest`", s.id.short());
        }
    }
    if ctx.json() {
        let mut docs: Vec<serde_json::Value> = list.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        for DamagedSnapshot { object, reason, header } in damaged {
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
        ctx.say(format!("{:<10} {:<20} {:<16} {:<20} {:>10} {:>8}  {:<14} tags", "id", "time (UTC)", "host", "component", "size", "files", "writer"));
        for s in list {
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
        // Printed even with --quiet: it is why the exit code is not 0.
        for DamagedSnapshot { object, reason, header } in damaged {
            let when = header.as_ref().map(|h| format!(" (taken {} on {}, {})", h.time.strftime("%Y-%m-%d %H:%M:%S"), h.host, h.component)).unwrap_or_default();
            outln!("DAMAGED {object}{when}: {reason}");
        }
        ctx.say(count(list.len(), "snapshot", "snapshots"));
    }
    listed.failure().map_or(Ok(()), |e| Err(exit::from_ops(&e)))
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
    let (_, found) = inspect::ls(&ctx.ws, &args.snapshot, args.path.as_deref().unwrap_or(""))?;
    let entries: Vec<LsEntry> = found
        .into_iter()
        .map(|Entry { path: raw_path, node }| LsEntry {
            path: String::from_utf8_lossy(&raw_path).into_owned(),
            path_bytes: bytes_if_not_utf8(&raw_path),
            kind: node.kind,
            mode: node.mode,
            size: node.size,
            mtime: jiff::Timestamp::from_nanosecond(i128::from(node.mtime_ns)).map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
            target: node.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
            target_bytes: node.target.as_deref().and_then(bytes_if_not_utf8),
            raw_path,
            raw_target: node.target,
        })
        .collect();
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
    let inspect::Diff { changes, domains } = inspect::diff(&ctx.ws, &args.from, &args.to)?;
    if let Some((a, b)) = &domains {
        errln!("reprise: note: the two snapshots were written by different writers (domains {a} and {b}): files are compared by size and modification time");
    }
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
    let s = inspect::stats(&ctx.ws)?;
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
