//! `init` and `key ...`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Result;
use reprise_engine::Repository;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::Role;

use crate::args::{InitArgs, KeyCommand};
use crate::commands::ledger;
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
    ledger::record(ctx, &repo, &ledger::init(&repo))?;
    if ctx.json() {
        ctx.print_json(&serde_json::json!({ "repository": target.url, "id": repo.id().to_hex(), "chunker": repo.config().chunker }))?;
    } else {
        ctx.say(format!("created repository {} at {}", repo.id().short(), target.url));
        ctx.say("keep the passphrase safe, and export the recovery key for escrow: reprise key export-recovery -o FILE");
    }
    Ok(())
}

pub fn run(ctx: &Context, cmd: &KeyCommand) -> Result<()> {
    let repo = ctx.open(None)?;
    match cmd {
        KeyCommand::List => {
            let keys = repo.keys()?;
            if ctx.json() {
                return ctx.print_json(&keys);
            }
            for k in keys {
                ctx.say(format!(
                    "{} {:10} {} {}@{} {}{}",
                    &k.name[..12],
                    k.info.role.to_string(),
                    k.info.created.strftime("%Y-%m-%d %H:%M"),
                    k.info.user,
                    k.info.host,
                    k.info.label,
                    if k.current { "  (in use)" } else { "" }
                ));
            }
        }
        KeyCommand::Add { write_only: true, credential: Some(path), .. } => {
            repo.require_full("issuing a write credential")?;
            let bytes = repo.secrets().to_write_credential();
            write_secret_file(path, &bytes, "write credential")?;
            ledger::record(ctx, &repo, &ledger::write_credential())?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "write_credential": path }))?;
            } else {
                ctx.say(format!("write credential written to {} (mode 0600): it can add backups to this repository, never read or delete them", path.display()));
            }
        }
        KeyCommand::Add { write_only, label, new_password_file, kdf, .. } => {
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let role = if *write_only { Role::WriteOnly } else { Role::Full };
            let name = repo.add_key(&pass, role, context::kdf(kdf), label)?;
            ledger::record(ctx, &repo, &ledger::key_add(&name, &role.to_string()))?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "added": name, "role": role }))?;
            } else {
                ctx.say(format!("added {role} key {}", &name[..12]));
            }
        }
        KeyCommand::Remove { id } => {
            let key = repo.find_key(id)?;
            repo.remove_key(&key.name)?;
            ledger::record(ctx, &repo, &ledger::key_remove(&key.name))?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "removed": key.name }))?;
            } else {
                ctx.say(format!("removed key {}", &key.name[..12]));
            }
        }
        KeyCommand::Passwd { new_password_file, kdf } => {
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let name = repo.change_passphrase(&pass, context::kdf(kdf))?;
            ledger::record(ctx, &repo, &ledger::key_passphrase(&name))?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "key": name }))?;
            } else {
                ctx.say(format!("passphrase changed; the key is now {}", &name[..12]));
            }
        }
        KeyCommand::ExportRecovery { output } => {
            repo.require_full("exporting the recovery key")?;
            let bytes = repo.secrets().to_recovery_file().map_err(|e| exit::usage(e.to_string()))?;
            write_secret_file(output, &bytes, "recovery key")?;
            ledger::record(ctx, &repo, &ledger::key_export_recovery())?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "recovery_key": output }))?;
            } else {
                ctx.say(format!("recovery key written to {} — whoever holds it can read every backup: store it offline", output.display()));
            }
        }
    }
    Ok(())
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
