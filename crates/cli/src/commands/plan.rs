//! `plan check`.

use anyhow::Result;
use reprise_plan::{Plan, PlanError};

use crate::args::PlanCommand;
use crate::exit;

pub fn run(global: &crate::args::Global, json: bool, cmd: &PlanCommand) -> Result<()> {
    match cmd {
        PlanCommand::Check => {
            let path = global
                .plan
                .clone()
                .or_else(|| reprise_plan::default_locations().into_iter().find(|p| p.exists()))
                .ok_or_else(|| exit::with_code(exit::NOT_FOUND, "no plan found: pass --plan FILE (or REPRISE_PLAN), or create ./reprise.toml"))?;
            match Plan::load(&path) {
                Ok(plan) => {
                    if json {
                        outln!("{}", serde_json::json!({ "plan": path, "ok": true, "components": plan.components.keys().collect::<Vec<_>>(), "repositories": plan.repositories.keys().collect::<Vec<_>>() }));
                    } else if !global.quiet {
                        outln!("{}: ok ({} repositories, {} components)", path.display(), plan.repositories.len(), plan.components.len());
                    }
                    Ok(())
                }
                Err(PlanError::Invalid(diags)) => {
                    if json {
                        let list: Vec<_> = diags
                            .iter()
                            .map(|d| serde_json::json!({ "file": d.file, "line": d.line, "column": d.column, "message": d.message, "fix": d.fix }))
                            .collect();
                        outln!("{}", serde_json::json!({ "plan": path, "ok": false, "errors": list }));
                    } else {
                        for d in &diags {
                            errln!("{d}");
                        }
                    }
                    Err(exit::with_code(exit::USAGE, format!("{}: {} error(s)", path.display(), diags.len())))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
