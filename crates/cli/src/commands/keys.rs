//! `init` and `key ...`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Result;
use reprise_engine::Repository;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::Role;
use reprise_engine::format::sign::KeyId;

use crate::args::{InitArgs, KeyCommand};
use crate::context::{self, Context};
use crate::exit;

pub fn init(ctx: &Context, args: &InitArgs) -> Result<()> {
    let target = ctx.target(None)?;
    let backend = Context::backend(&target)?;
    let pass = ctx.passphrase(&target.password, &format!("new passphrase for {}: ", target.url))?;
    let mut chunker = ChunkerParams::default();
    if let Some(kib) = args.chunk_size {
        let avg = kib.saturating_mul(1024);
        chunker = ChunkerParams { avg_size: avg, min_size: avg / 4, max_size: avg.saturating_mul(4), ..chunker };
        chunker.validate().map_err(|e| exit::usage(format!("--chunk-size {kib}: {e}")))?;
    }
    let pack_size = args.pack_size.map_or(reprise_engine::format::config::DEFAULT_PACK_SIZE, |m| m.saturating_mul(1 << 20));
    let repo = Repository::init_with(backend, &pass, context::kdf(&args.kdf), chunker, pack_size)?;
    if ctx.json() {
        ctx.print_json(&serde_json::json!({ "repository": target.url, "id": repo.id().to_hex(), "chunker": repo.config().chunker }))?;
    } else {
        ctx.say(format!("created repository {} at {}", repo.id().short(), target.url));
        ctx.say("keep the passphrase safe, and export the recovery key for escrow: reprise key export-recovery -o FILE");
    }
    Ok(())
}

fn short(id: Option<&str>) -> &str {
    id.map_or("-", |k| &k[..12])
}

pub fn run(ctx: &Context, cmd: &KeyCommand) -> Result<()> {
    let repo = ctx.open(None)?;
    match cmd {
        KeyCommand::List => {
            let keys = repo.keys()?;
            if ctx.json() {
                return ctx.print_json(&keys);
            }
            ctx.say(format!("{:<12} {:<10} {:<10} {:<16} {:<24} {:<14} label", "key id", "kind", "status", "created (UTC)", "created by", "for host"));
            for k in keys {
                ctx.say(format!(
                    "{:<12} {:<10} {:<10} {:<16} {:<24} {:<14} {}{}",
                    short(k.key_id.as_deref()),
                    k.kind,
                    k.status,
                    k.info.created.strftime("%Y-%m-%d %H:%M"),
                    format!("{}@{}", k.info.user, k.info.host),
                    k.bound_host.as_deref().unwrap_or("-"),
                    k.info.label,
                    if k.current { "  (in use)" } else { "" }
                ));
            }
        }
        KeyCommand::Add { write_only: true, credential: Some(path), label, host, .. } => {
            let secrets = repo.new_credential()?;
            let bytes = secrets.to_write_credential().map_err(|e| exit::usage(e.to_string()))?;
            // The credential file first: a record without its file vouches
            // for nobody, a file without its record is refused (unendorsed).
            write_secret_file(path, &bytes, "write credential")?;
            let (_, key_id) = match repo.record_credential(&secrets, label, host.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    let _ = std::fs::remove_file(path);
                    return Err(e.into());
                }
            };
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "write_credential": path, "key_id": key_id.to_hex() }))?;
            } else {
                ctx.say(format!(
                    "write credential {} written to {} (mode 0600): it can add backups to its own domain of this repository, never read or delete them; revoke it with `reprise key revoke {}`",
                    key_id.short(),
                    path.display(),
                    key_id.short()
                ));
            }
        }
        KeyCommand::Add { write_only, label, host, new_password_file, kdf, .. } => {
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let role = if *write_only { Role::WriteOnly } else { Role::Full };
            let (name, key_id) = repo.add_key(&pass, role, context::kdf(kdf), label, host.as_deref())?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "added": name, "key_id": key_id.to_hex(), "role": role }))?;
            } else {
                ctx.say(format!("added {role} key {}", key_id.short()));
            }
        }
        KeyCommand::Remove { id } => {
            let key = repo.find_key(id)?;
            if key.info.role == Role::WriteOnly && key.status != "legacy" {
                let report = revoke(&repo, &key, "removed")?;
                if ctx.json() {
                    return ctx.print_json(&serde_json::json!({ "removed": key.name, "revocation": report }));
                }
                ctx.say(format!("removed {} {}: what it wrote so far stays trusted ({} snapshot(s)); anything it writes from now on is ignored", key.kind, short(key.key_id.as_deref()), report.snapshots));
                return Ok(());
            }
            repo.remove_key(&key.name)?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "removed": key.name }))?;
            } else {
                ctx.say(format!("removed key {}", short(key.key_id.as_deref().or(Some(&key.name)))));
            }
        }
        KeyCommand::Revoke { id, reason } => {
            let key = repo.find_key(id)?;
            if key.info.role != Role::WriteOnly || key.status == "legacy" {
                return Err(exit::usage(format!(
                    "key {} is a {} key: only write-only keys and credentials are revoked (remove a full-access key with `reprise key remove`)",
                    short(key.key_id.as_deref().or(Some(&key.name))),
                    if key.status == "legacy" { "format 1" } else { key.kind }
                )));
            }
            let report = revoke(&repo, &key, reason)?;
            if ctx.json() {
                return ctx.print_json(&report);
            }
            ctx.say(format!(
                "revoked {} {}{}: the {} snapshot(s), {} pack(s), {} index file(s) and {} WAL file(s) it signed so far stay trusted; anything it writes from now on is ignored and reported by `reprise check`",
                key.kind,
                &report.key_id[..12],
                if report.label.is_empty() { String::new() } else { format!(" ({})", report.label) },
                report.snapshots,
                report.packs,
                report.index_files,
                report.wal_files
            ));
            ctx.say("now rotate the storage credential that host held (Azure: change or delete its SAS's stored access policy; S3: deactivate its access key), and give the rebuilt host a new key: reprise key add --write-only");
        }
        KeyCommand::Upgrade => {
            let report = reprise_engine::upgrade::upgrade(&repo, repo_key_name(&repo).as_deref())?;
            if ctx.json() {
                return ctx.print_json(&report);
            }
            ctx.say(format!(
                "upgraded: {} pack(s), {} snapshot(s) and {} WAL file(s) written before now stay trusted (legacy record {}); {} index file(s) signed, {} hold(s) signed, {} prune mark(s) removed, {} full-access key(s) endorsed",
                report.legacy_packs,
                report.legacy_snapshots,
                report.legacy_wal_files,
                report.legacy_record.map(|r| r.short()).unwrap_or_default(),
                report.index_files_rewritten,
                report.holds_signed,
                report.marks_removed,
                report.keys_endorsed.len()
            ));
            if !report.write_only_keys_removed.is_empty() {
                ctx.say(format!(
                    "{} format 1 write-only key(s) removed: their hosts (and any format 1 write credential) must get new keys: reprise key add --write-only [--credential FILE]",
                    report.write_only_keys_removed.len()
                ));
            }
        }
        KeyCommand::Passwd { new_password_file, kdf } => {
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let name = repo.change_passphrase(&pass, context::kdf(kdf))?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "key": name }))?;
            } else {
                ctx.say(format!("passphrase changed; the key file is now {}", &name[..12]));
            }
        }
        KeyCommand::ExportRecovery { output } => {
            repo.require_full("exporting the recovery key")?;
            let bytes = repo.secrets().to_recovery_file().map_err(|e| exit::usage(e.to_string()))?;
            write_secret_file(output, &bytes, "recovery key")?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "recovery_key": output }))?;
            } else {
                ctx.say(format!("recovery key written to {} — whoever holds it can read every backup: store it offline", output.display()));
            }
        }
    }
    Ok(())
}

fn repo_key_name(repo: &Repository) -> Option<String> {
    repo.keys().ok()?.into_iter().find(|k| k.current).map(|k| k.name)
}

fn revoke(repo: &Repository, key: &reprise_engine::repository::KeyEntry, reason: &str) -> Result<reprise_engine::revoke::RevokeReport> {
    let id: KeyId = key.key_id.as_deref().and_then(|k| k.parse().ok()).ok_or_else(|| exit::usage("this key has no key ID: run `reprise key upgrade` first"))?;
    Ok(reprise_engine::revoke::revoke(repo, &id, reason)?)
}

/// Creates a file readable by its owner only, never over an existing one.
fn write_secret_file(path: &std::path::Path, bytes: &[u8], what: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::AlreadyExists { exit::USAGE } else { exit::PERMISSION };
        exit::with_code(code, format!("cannot create {}: {e} (a {what} is never written over an existing file)", path.display()))
    })?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
