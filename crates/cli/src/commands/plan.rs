//! `plan check`, `plan init`, `plan render` and `plan lint`.
//!
//! `render` and `lint` read the repositories (through
//! `reprise_ops::plan_doc`, which builds the document and the findings);
//! here only the flags, the file written and the exit code.
//!
//! `check` validates the file (every error with file, line, column and
//! fix) and then looks at the machine it runs on: a path that does not
//! exist is not an error in the plan (the plan may be written before the
//! server is set up) but a backup of it would fail, so it is a warning.
//! `init` writes a commented starter plan, the file the "no plan found"
//! message points to.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use reprise_engine::CancelToken;
use reprise_ops::plan_doc;
use reprise_plan::{ComponentKind, PasswordSource, Plan, PlanError};
use reprise_report::Lang;

use crate::args::{Global, PlanCommand};
use crate::context::Context;
use crate::exit;
use crate::output::count;

pub fn run(global: &Global, json: bool, cmd: &PlanCommand, cancel: &CancelToken) -> Result<()> {
    match cmd {
        PlanCommand::Check => check(global, json),
        PlanCommand::Init { output } => init(global, json, output.as_deref()),
        PlanCommand::Render { output, format, lang } => render(global, cancel, output, format.as_deref(), lang),
        PlanCommand::Lint => lint(global, cancel),
    }
}

/// The workspace, refusing to go on without a plan (there is nothing to
/// render or lint).
fn context(global: &Global, cancel: &CancelToken) -> Result<Context> {
    let ctx = Context::new(global.clone(), cancel.clone())?;
    if ctx.ws.plan_if_any().is_none() {
        return Err(exit::with_code(exit::NOT_FOUND, NO_PLAN));
    }
    Ok(ctx)
}

#[derive(Clone, Copy)]
enum Format {
    Markdown,
    Html,
    Pdf,
}

fn render(global: &Global, cancel: &CancelToken, output: &Path, format: Option<&str>, lang: &str) -> Result<()> {
    let format = match format.map(str::to_ascii_lowercase).or_else(|| output.extension().map(|e| e.to_string_lossy().to_ascii_lowercase())).as_deref() {
        None | Some("md" | "markdown") => Format::Markdown,
        Some("html" | "htm") => Format::Html,
        Some("pdf") => Format::Pdf,
        Some(other) if format.is_some() => return Err(exit::usage(format!("--format {other}: use md, html or pdf"))),
        Some(_) => Format::Markdown,
    };
    let lang = Lang::parse(lang).ok_or_else(|| exit::usage(format!("--lang {lang}: use fr or en")))?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        return Err(exit::with_code(exit::NOT_FOUND, format!("cannot write {}: directory {} does not exist; fix: create it, or give another -o FILE", output.display(), dir.display())));
    }
    let ctx = context(global, cancel)?;
    let evidence = plan_doc::gather(&ctx.ws, &reprise_ops::drill::RecordedDrills).map_err(|e| exit::from_ops(&e))?;
    let plan = ctx.ws.plan().map_err(|e| exit::from_ops(&e))?;
    let doc = plan_doc::document(plan, &evidence, &plan_doc::DocumentOptions { lang });
    let bytes = match format {
        Format::Markdown => reprise_report::markdown::render(&doc).into_bytes(),
        Format::Html => reprise_report::html::render(&doc).into_bytes(),
        Format::Pdf => reprise_report::pdf::render(&doc).map_err(|e| exit::with_code(exit::ERROR, e.to_string()))?,
    };
    // Written beside, then renamed: a reader never sees half a document.
    let tmp = output.with_extension("reprise-tmp");
    std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, output)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        let code = if e.kind() == std::io::ErrorKind::PermissionDenied { exit::PERMISSION } else { exit::ERROR };
        exit::with_code(code, format!("cannot write {}: {e}; fix: give a file this account may write (-o FILE)", output.display()))
    })?;
    let findings = plan_doc::lint(plan, &evidence);
    if ctx.json() {
        ctx.print_json(&serde_json::json!({ "output": output, "bytes": bytes.len(), "findings": findings.len() }))?;
    } else {
        ctx.say(format!("wrote {} ({} bytes); {} (`reprise plan lint` lists them)", output.display(), bytes.len(), count(findings.len(), "finding", "findings")));
    }
    Ok(())
}

fn lint(global: &Global, cancel: &CancelToken) -> Result<()> {
    let ctx = context(global, cancel)?;
    let evidence = plan_doc::gather(&ctx.ws, &reprise_ops::drill::RecordedDrills).map_err(|e| exit::from_ops(&e))?;
    let plan = ctx.ws.plan().map_err(|e| exit::from_ops(&e))?;
    let findings = plan_doc::lint(plan, &evidence);
    let errors = findings.iter().filter(|f| f.severity == plan_doc::Severity::Error).count();
    if ctx.json() {
        ctx.print_json(&serde_json::json!({ "plan": plan.file, "measured_at": evidence.measured_at, "errors": errors, "warnings": findings.len() - errors, "findings": findings }))?;
    } else if !global.quiet {
        for f in &findings {
            let severity = if f.severity == plan_doc::Severity::Error { "error" } else { "warning" };
            outln!("{severity}[{}] {}: {}\n    fix: {}", f.code, f.subject, f.message, f.fix);
        }
    }
    match (errors, findings.len()) {
        (0, 0) => {
            ctx.say(format!("{}: no finding", plan.file.display()));
            Ok(())
        }
        (0, n) => Err(exit::with_code(exit::LINT_WARNINGS, format!("{}: {} (listed above, each with its fix)", plan.file.display(), count(n, "warning", "warnings")))),
        (e, n) => Err(exit::with_code(exit::LINT_ERRORS, format!("{}: {} and {} (listed above, each with its fix)", plan.file.display(), count(e, "error", "errors"), count(n - e, "warning", "warnings")))),
    }
}

fn check(global: &Global, json: bool) -> Result<()> {
    let path = global
        .plan
        .clone()
        .or_else(|| reprise_plan::default_locations().into_iter().find(|p| p.exists()))
        .ok_or_else(|| exit::with_code(exit::NOT_FOUND, NO_PLAN))?;
    match Plan::load(&path) {
        Ok(plan) => {
            let warnings = warnings(&plan);
            if json {
                crate::output::json(&serde_json::json!({
                    "plan": path,
                    "ok": true,
                    "components": plan.components.keys().collect::<Vec<_>>(),
                    "repositories": plan.repositories.keys().collect::<Vec<_>>(),
                    "warnings": warnings,
                }))?;
            } else {
                for w in &warnings {
                    errln!("reprise: warning: {w}");
                }
                if !global.quiet {
                    outln!(
                        "{}: ok ({}, {}{})",
                        path.display(),
                        count(plan.repositories.len(), "repository", "repositories"),
                        count(plan.components.len(), "component", "components"),
                        if warnings.is_empty() { String::new() } else { format!("; {} above", count(warnings.len(), "warning", "warnings")) }
                    );
                }
            }
            Ok(())
        }
        Err(PlanError::Invalid(diags)) => {
            if json {
                let list: Vec<_> = diags
                    .iter()
                    .map(|d| serde_json::json!({ "file": d.file, "line": d.line, "column": d.column, "message": d.message, "fix": d.fix }))
                    .collect();
                crate::output::json(&serde_json::json!({ "plan": path, "ok": false, "errors": list }))?;
            } else {
                for d in &diags {
                    errln!("{d}");
                }
            }
            Err(exit::with_code(exit::USAGE, format!("{}: {} (listed above, each with its fix)", path.display(), count(diags.len(), "error", "errors"))))
        }
        Err(e) => Err(e.into()),
    }
}

pub use reprise_ops::workspace::NO_PLAN;

/// What the plan names that this machine does not have.
fn warnings(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    let missing = |p: &Path| !p.exists();
    for r in plan.repositories.values() {
        match &r.password {
            PasswordSource::File(f) if missing(f) => {
                out.push(format!("repository '{}': password_file {} does not exist (commands that open it will fail with exit 3)", r.name, f.display()));
            }
            PasswordSource::KeyFile(f) if missing(f) => {
                out.push(format!("repository '{}': key_file {} does not exist (commands that open it will fail with exit 3)", r.name, f.display()));
            }
            _ => {}
        }
        if let Some(reprise_plan::CredentialSource::File(f)) = &r.credentials
            && missing(f)
        {
            out.push(format!("repository '{}': credentials_file {} does not exist (commands that open it will fail with exit 3)", r.name, f.display()));
        }
    }
    for c in plan.components.values() {
        match &c.kind {
            ComponentKind::Files => {
                for p in c.paths.iter().filter(|p| missing(p)) {
                    out.push(format!("component '{}': path {} does not exist here (a backup of it would fail with exit 3)", c.name, p.display()));
                }
            }
            ComponentKind::Postgres(pg) => {
                if let Some(d) = pg.data_directory.as_deref().filter(|d| missing(d)) {
                    out.push(format!("component '{}': data_directory {} does not exist here (base backups run on the database host)", c.name, d.display()));
                }
            }
        }
    }
    out
}

const STARTER: &str = r#"# reprise plan: what to protect, where, and the objectives it must meet.
# Every key is described in docs/PLAN.md; `reprise plan check` validates
# this file (each error with its line and fix).

[plan]
name = "my-platform"

# Where backups go. A directory path, s3://BUCKET/PREFIX or
# azure://ACCOUNT/CONTAINER/PREFIX (credentials come from the environment).
[repositories.primary]
url = "/var/backups/reprise"
# The passphrase: a file readable only by the account that runs reprise
# (first line), or password_env = "VARIABLE". Never the passphrase itself.
password_file = "/etc/reprise/primary.pass"
site = "main-datacenter"          # free text: where the storage is

# A second copy, elsewhere (3-2-1), filled by `reprise copy`:
# [repositories.offsite]
# url = "s3://my-backups/reprise?region=eu-west-3"
# password_file = "/etc/reprise/primary.pass"
# site = "eu-west-3"
# copy_of = "primary"

# A directory tree.
[components.documents]
type = "files"
paths = ["/srv/documents"]        # absolute paths
exclude = ["*.tmp"]
tags = ["documents"]

[components.documents.objectives]
rpo = "1h"                        # most data, in time, that may be lost
rto = "4h"                        # longest a restore may take
retain_for = "10y"                # legal retention: calendar years, fixed in each snapshot
# immutable = true                # storage locks (S3 Object Lock, Azure immutability)
retention = { keep_within = "7d", daily = 30, weekly = 12, monthly = 12, yearly = 7 }

# A PostgreSQL cluster (reprise runs on the database host):
# [components.database]
# type = "postgres"
# connection = "host=/var/run/postgresql user=postgres dbname=postgres"
# data_directory = "/var/lib/postgresql/15/main"
#
# [components.database.objectives]
# rpo = "5m"
# rto = "2h"
# pitr = "7d"                     # point-in-time recovery window
# retention = { keep_within = "7d", daily = 30 }
"#;

fn init(global: &Global, json: bool, output: Option<&Path>) -> Result<()> {
    let path: PathBuf = output.map(Path::to_path_buf).or_else(|| global.plan.clone()).unwrap_or_else(|| PathBuf::from("reprise.toml"));
    // The starter is a valid plan: what it says is what `plan check` accepts.
    debug_assert!(Plan::parse(&path, STARTER).is_ok());
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => exit::usage(format!("{} exists: a plan is never written over; edit it, or give another file with -o FILE", path.display())),
        std::io::ErrorKind::PermissionDenied => exit::with_code(exit::PERMISSION, format!("cannot create {}: permission denied; fix: write it where this account may (-o FILE)", path.display())),
        std::io::ErrorKind::NotFound => exit::with_code(exit::NOT_FOUND, format!("cannot create {}: its directory does not exist; fix: create it, or give another file with -o FILE", path.display())),
        _ => exit::with_code(exit::ERROR, format!("cannot create {}: {e}", path.display())),
    })?;
    f.write_all(STARTER.as_bytes()).and_then(|()| f.sync_all())?;
    if json {
        crate::output::json(&serde_json::json!({ "plan": path }))?;
    } else if !global.quiet {
        outln!("wrote a starter plan to {}: edit it (docs/PLAN.md describes every key), then run `reprise plan check`", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_starter_plan_is_valid() {
        let plan = reprise_plan::Plan::parse(std::path::Path::new("reprise.toml"), super::STARTER).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.components.len(), 1);
        assert_eq!(plan.repositories.len(), 1);
    }
}
