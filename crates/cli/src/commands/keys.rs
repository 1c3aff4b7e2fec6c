//! `init` and `key ...`.

use anyhow::Result;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::Role;
use reprise_ops::keys::{self, short};

use crate::args::{InitArgs, KeyCommand};
use crate::context::{self, Context};
use crate::exit;

pub fn init(ctx: &Context, args: &InitArgs) -> Result<()> {
    let mut chunker = ChunkerParams::default();
    if let Some(kib) = args.chunk_size {
        let avg = kib.saturating_mul(1024);
        chunker = ChunkerParams { avg_size: avg, min_size: avg / 4, max_size: avg.saturating_mul(4), ..chunker };
        chunker.validate().map_err(|e| exit::usage(format!("--chunk-size {kib}: {e}")))?;
    }
    let pack_size = args.pack_size.map_or(reprise_engine::format::config::DEFAULT_PACK_SIZE, |m| m.saturating_mul(1 << 20));
    let created = keys::init(&ctx.ws, context::kdf(&args.kdf), chunker, pack_size)?;
    if ctx.json() {
        ctx.print_json(&created)?;
    } else {
        ctx.say(format!("created repository {} at {}", &created.id[..8], created.repository));
        ctx.say("keep the passphrase safe, and export the recovery key for escrow: reprise key export-recovery -o FILE");
    }
    Ok(())
}

pub fn run(ctx: &Context, cmd: &KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::List => {
            let keys = keys::list(&ctx.ws)?;
            if ctx.json() {
                return ctx.print_json(&keys);
            }
            ctx.say(format!("{:<12} {:<10} {:<10} {:<16} {:<24} {:<14} label", "key id", "kind", "status", "created (UTC)", "created by", "for host"));
            for k in keys {
                ctx.say(format!(
                    "{:<12} {:<10} {:<10} {:<16} {:<24} {:<14} {}{}",
                    short(k.key_id.as_deref().unwrap_or("-")),
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
            let key_id = keys::write_credential(&ctx.ws, path, label, host.as_deref())?;
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
            // The repository is opened (its passphrase asked) before the new one.
            ctx.ws.open(None)?;
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let role = if *write_only { Role::WriteOnly } else { Role::Full };
            let (name, key_id) = keys::add(&ctx.ws, &pass, role, context::kdf(kdf), label, host.as_deref())?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "added": name, "key_id": key_id.to_hex(), "role": role }))?;
            } else {
                ctx.say(format!("added {role} key {}", key_id.short()));
            }
        }
        KeyCommand::Remove { id } => {
            let keys::Removed { key, revocation } = keys::remove(&ctx.ws, id)?;
            if let Some(report) = revocation {
                if ctx.json() {
                    return ctx.print_json(&serde_json::json!({ "removed": key.name, "revocation": report }));
                }
                ctx.say(format!("removed {} {}: what it wrote so far stays trusted ({} snapshot(s)); anything it writes from now on is ignored", key.kind, short(key.key_id.as_deref().unwrap_or("-")), report.snapshots));
                return Ok(());
            }
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "removed": key.name }))?;
            } else {
                ctx.say(format!("removed key {}", short(key.key_id.as_deref().unwrap_or(&key.name))));
            }
        }
        KeyCommand::Revoke { id, reason } => {
            let keys::Revoked { key, report } = keys::revoke(&ctx.ws, id, reason)?;
            if ctx.json() {
                return ctx.print_json(&report);
            }
            ctx.say(format!(
                "revoked {} {}{}: the {} snapshot(s), {} pack(s), {} index file(s) and {} WAL file(s) it signed so far stay trusted; anything it writes from now on is ignored and reported by `reprise check`",
                key.kind,
                short(&report.key_id),
                if report.label.is_empty() { String::new() } else { format!(" ({})", report.label) },
                report.snapshots,
                report.packs,
                report.index_files,
                report.wal_files
            ));
            ctx.say("now rotate the storage credential that host held (Azure: change or delete its SAS's stored access policy; S3: deactivate its access key), and give the rebuilt host a new key: reprise key add --write-only");
        }
        KeyCommand::Upgrade => {
            let report = keys::upgrade(&ctx.ws)?;
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
            ctx.ws.open(None)?;
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let name = keys::change_passphrase(&ctx.ws, &pass, context::kdf(kdf))?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "key": name }))?;
            } else {
                ctx.say(format!("passphrase changed; the key file is now {}", &name[..12]));
            }
        }
        KeyCommand::ExportRecovery { output } => {
            keys::export_recovery(&ctx.ws, output)?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "recovery_key": output }))?;
            } else {
                ctx.say(format!("recovery key written to {} — whoever holds it can read every backup: store it offline", output.display()));
            }
        }
    }
    Ok(())
}
