//! The layers, enforced over `cargo metadata` (ARCHITECTURE.md, "Layers").
//!
//! A rule written only in a document is broken by the first convenient
//! `use`: the engine reaching for the plan, a library reaching for clap.
//! This test reads the workspace's declared dependencies (normal and
//! build; tests may use anything) and names every edge that breaks a
//! rule, so that the failure says what to move.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Workspace package → (its manifest path, its normal and build dependencies).
fn workspace() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let out = Command::new(cargo).args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path", manifest]).output().expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    v["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().expect("name").to_owned())
                .collect();
            (p["name"].as_str().expect("name").to_owned(), (p["manifest_path"].as_str().expect("path").to_owned(), deps))
        })
        .collect()
}

/// Every path `from` → ... → `to` through workspace packages, as text.
fn path_to(ws: &BTreeMap<String, (String, BTreeSet<String>)>, from: &str, to: &str) -> Option<String> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty").clone();
        if last == to && path.len() > 1 {
            return Some(path.join(" -> "));
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        if let Some((_, deps)) = ws.get(&last) {
            for d in deps {
                let mut next = path.clone();
                next.push(d.clone());
                stack.push(next);
            }
        }
    }
    None
}

/// The rules, checked on any dependency graph; every broken one named.
fn violations(ws: &BTreeMap<String, (String, BTreeSet<String>)>) -> Vec<String> {
    let mut broken = Vec::new();
    let mut never = |from: &str, to: &str, why: &str| {
        if ws.contains_key(from)
            && let Some(p) = path_to(ws, from, to)
        {
            broken.push(format!("{p}: {why}"));
        }
    };
    for upper in ["reprise-plan", "reprise-ops", "reprise", "reprise-demo"] {
        never("reprise-engine", upper, "the engine knows no plan, operation or interface");
    }
    never("reprise-plan", "reprise-engine", "plan and engine never depend on each other");
    never("reprise-format", "reprise-backends", "the format crate does no I/O");
    for lower in ["reprise-format", "reprise-backends", "reprise-engine", "reprise-plan", "reprise-postgres", "reprise-source-files", "reprise-ledger"] {
        never(lower, "reprise-ops", "the operations sit above the engine, the plan and the sources, never below");
    }
    for (name, (manifest, deps)) in ws {
        for interface_only in ["clap", "anyhow", "indicatif"] {
            if deps.contains(interface_only) && name != "reprise" {
                broken.push(format!("{name} -> {interface_only}: only the CLI (crates/cli) knows {interface_only}; return typed errors and reports instead"));
            }
        }
        if name != "reprise" && deps.contains("reprise") {
            broken.push(format!("{name} -> reprise: nothing depends on the CLI"));
        }
        // Services reach the engine and the sources through the operations.
        if manifest.contains("/crates/services/") {
            for below in ["reprise-engine", "reprise-postgres", "reprise-source-files", "reprise-backends", "reprise-format"] {
                if deps.contains(below) {
                    broken.push(format!("{name} -> {below}: services go through reprise-ops"));
                }
            }
        }
    }
    broken
}

#[test]
fn the_layers_hold() {
    let ws = workspace();
    for needed in ["reprise-engine", "reprise-plan", "reprise-ops", "reprise"] {
        assert!(ws.contains_key(needed), "{needed} is not in the workspace: this test checks nothing (found {:?})", ws.keys().collect::<Vec<_>>());
    }
    let broken = violations(&ws);
    assert!(broken.is_empty(), "the layering is broken (ARCHITECTURE.md, \"Layers\"):\n  {}", broken.join("\n  "));
}

/// The checker itself finds a broken edge, with its whole path: a test
/// that cannot fail proves nothing.
#[test]
fn a_broken_edge_is_named() {
    let mut ws = workspace();
    ws.get_mut("reprise-plan").expect("plan").1.insert("reprise-source-files".into());
    ws.get_mut("reprise-postgres").expect("postgres").1.insert("anyhow".into());
    let broken = violations(&ws);
    assert!(broken.iter().any(|b| b.starts_with("reprise-plan -> reprise-source-files -> reprise-engine:")), "{broken:#?}");
    assert!(broken.iter().any(|b| b.starts_with("reprise-postgres -> anyhow:")), "{broken:#?}");
}
