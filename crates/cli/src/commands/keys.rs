//! `init` and `key ...`.

use anyhow::Result;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::Role;
use reprise_ops::keys;

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
            keys::write_credential(&ctx.ws, path)?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "write_credential": path }))?;
            } else {
                ctx.say(format!("write credential written to {} (mode 0600): it can add backups to this repository, never read or delete them", path.display()));
            }
        }
        KeyCommand::Add { write_only, label, new_password_file, kdf, .. } => {
            // The repository is opened (its passphrase asked) before the new one.
            ctx.ws.open(None)?;
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let role = if *write_only { Role::WriteOnly } else { Role::Full };
            let name = keys::add(&ctx.ws, &pass, role, context::kdf(kdf), label)?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "added": name, "role": role }))?;
            } else {
                ctx.say(format!("added {role} key {}", &name[..12]));
            }
        }
        KeyCommand::Remove { id } => {
            let name = keys::remove(&ctx.ws, id)?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "removed": name }))?;
            } else {
                ctx.say(format!("removed key {}", &name[..12]));
            }
        }
        KeyCommand::Passwd { new_password_file, kdf } => {
            ctx.ws.open(None)?;
            let pass = context::new_passphrase(new_password_file.as_deref(), "REPRISE_NEW_PASSWORD")?;
            let name = keys::change_passphrase(&ctx.ws, &pass, context::kdf(kdf))?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "key": name }))?;
            } else {
                ctx.say(format!("passphrase changed; the key is now {}", &name[..12]));
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
