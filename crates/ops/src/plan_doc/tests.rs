//! Each lint rule on its own facts, and the rendered plan as a reader
//! sees it (a snapshot, with fixed measurements so it never drifts).

#![allow(clippy::duration_suboptimal_units, reason = "drill figures in seconds, as drills record them")]

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use reprise_plan::Plan;
use reprise_report::Lang;

use super::*;

/// One lint case: the code, its subject, and the change that triggers it.
type Case = (&'static str, &'static str, Box<dyn Fn(&mut Plan, &mut Evidence)>);

const NOW: &str = "2026-11-26T10:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().expect("time")
}

/// The MedicApp example, whose continuity sections are all filled.
fn medicapp() -> Plan {
    Plan::parse(Path::new("/etc/reprise/medicapp.toml"), include_str!("../../../../docs/examples/medicapp.toml")).expect("the example parses")
}

/// Measurements under which the example plan keeps every promise it can
/// keep on these facts: backed up minutes ago, off-site, locked.
fn healthy(m: &str) -> ComponentEvidence {
    ComponentEvidence {
        component: m.to_owned(),
        state: Measurement::Measured(Box::new(Measured {
            snapshots: 31,
            last_backup: Some(at("2026-11-26T09:45:00Z")),
            oldest_restorable: Some(at("2026-11-19T03:00:00Z")),
            newest_restorable: Some(at("2026-11-26T09:59:30Z")),
            rpo_seconds: Some(30.0),
            pitr_window_seconds: None,
            copies: 3,
            media: vec!["azure-blob".into()],
            off_site: Some(true),
            three_two_one: false,
            repositories: Vec::new(),
            immutability_in_force: Some(true),
            immutability_reason: Some("Locked policy until 2046-11-26".into()),
            alerts: Vec::new(),
        })),
    }
}

fn drill(name: &str, components: &[&str], finished: &str, passed: bool, rto: u64) -> DrillEvidence {
    DrillEvidence {
        name: name.into(),
        id: "0123456789abcdef".into(),
        finished_at: at(finished),
        passed,
        components: components.iter().map(|c| (*c).to_owned()).collect(),
        measured_rto: Some(Duration::from_secs(rto)),
        achieved_rpo: Some(Duration::from_secs(4)),
        objectives: components.iter().map(|c| ObjectiveVerdict { component: (*c).into(), objective: "rto".into(), target: None, measured: Some(Duration::from_secs(rto)), met: true }).collect(),
    }
}

/// Every fact good: recent drills of both required tests.
fn good_evidence(plan: &Plan) -> Evidence {
    Evidence {
        measured_at: at(NOW),
        components: plan.components.keys().map(|c| healthy(c)).collect(),
        drills: vec![drill("monthly-db", &["medicapp-db"], "2026-11-20T02:00:00Z", true, 600), drill("docs", &["signed-documents", "secrets"], "2026-10-01T02:00:00Z", true, 300)],
        drills_unavailable: None,
    }
}

fn codes(plan: &Plan, ev: &Evidence) -> Vec<(&'static str, String)> {
    lint(plan, ev).into_iter().map(|f| (f.code, f.subject)).collect()
}

/// The example itself: the one finding is the seed's own contradiction
/// (the database keeps 7 yearly backups, medical records 20 years).
#[test]
fn the_example_on_good_facts_has_only_the_seeds_own_retention_gap() {
    let plan = medicapp();
    assert_eq!(codes(&plan, &good_evidence(&plan)), vec![("retention-below-legal", "medicapp-db".to_owned())]);
}

/// Each case of issue 11 triggers its code, on the subject it is about,
/// and nothing else changes.
#[test]
fn each_lint_case_triggers_its_code() {
    let base = medicapp();
    let cases: Vec<Case> = vec![
        ("contact-not-reviewed", "tech", Box::new(|p, _| p.continuity.contacts.get_mut("tech").expect("tech").reviewed = Some(jiff::civil::date(2026, 6, 1)))),
        ("drill-overdue", "database-restore", Box::new(|_, e| e.drills.retain(|d| d.name != "monthly-db"))),
        ("drill-failed", "database-restore", Box::new(|_, e| e.drills[0].passed = false)),
        ("rpo-over-objective", "medicapp-db", Box::new(|_, e| set(e, "medicapp-db", |m| m.rpo_seconds = Some(7200.0)))),
        ("rto-over-objective", "medicapp-db", Box::new(|_, e| e.drills[0].objectives[0].measured = Some(Duration::from_secs(3 * 3600)))),
        ("rto-not-measured", "medicapp-db", Box::new(|_, e| e.drills.retain(|d| d.name != "monthly-db"))),
        ("no-off-site-copy", "signed-documents", Box::new(|_, e| set(e, "signed-documents", |m| m.off_site = Some(false)))),
        ("off-site-unknown", "secrets", Box::new(|_, e| set(e, "secrets", |m| m.off_site = None))),
        ("retention-below-legal", "signed-documents", Box::new(|p, _| {
            let o = &mut p.components.get_mut("signed-documents").expect("docs").objectives;
            o.retain_for = Some(reprise_plan::Period { months: 12 * 10, seconds: 0 });
            o.retention.yearly = Some(10);
        })),
        ("immutability-not-in-force", "signed-documents", Box::new(|_, e| set(e, "signed-documents", |m| m.immutability_in_force = Some(false)))),
        ("no-objectives", "secrets", Box::new(|p, _| {
            let o = &mut p.components.get_mut("secrets").expect("secrets").objectives;
            (o.rpo, o.rto) = (None, None);
        })),
        ("no-backup", "secrets", Box::new(|_, e| set(e, "secrets", |m| m.snapshots = 0))),
        ("evidence-unavailable", "secrets", Box::new(|_, e| e.components.iter_mut().find(|c| c.component == "secrets").expect("secrets").state = Measurement::Unavailable { reason: "wrong passphrase".into() })),
        ("review-overdue", "plan", Box::new(|p, _| p.continuity.review.next = Some(jiff::civil::date(2026, 11, 1)))),
        ("no-contacts", "plan", Box::new(|p, _| {
            p.continuity.contacts.clear();
        })),
        ("no-test-required", "plan", Box::new(|p, _| p.continuity.tests.clear())),
    ];
    for (code, subject, change) in cases {
        let mut plan = base.clone();
        let mut ev = good_evidence(&plan);
        change(&mut plan, &mut ev);
        let found = codes(&plan, &ev);
        assert!(found.contains(&(code, subject.to_owned())), "{code} on {subject} not found in {found:?}");
        let expected = lint::CODES.iter().find(|(c, _, _)| *c == code).expect("documented code").1;
        assert!(lint(&plan, &ev).iter().filter(|f| f.code == code).all(|f| f.severity == expected && !f.fix.is_empty()));
    }
}

fn set(e: &mut Evidence, component: &str, f: impl Fn(&mut Measured)) {
    let c = e.components.iter_mut().find(|c| c.component == component).expect("component");
    if let Measurement::Measured(m) = &mut c.state {
        f(m);
    }
}

/// The rendered plan, in French, as the plan owner reads it.
#[test]
fn rendered_plan_markdown() {
    let plan = medicapp();
    let md = reprise_report::markdown::render(&document(&plan, &good_evidence(&plan), &DocumentOptions { lang: Lang::Fr }));
    insta::assert_snapshot!(md);
}

/// No placeholder, whatever is missing: with no drill, no measurement
/// and no continuity section at all, each missing fact is named.
#[test]
fn missing_facts_are_named_never_left_blank() {
    let full = medicapp();
    let mut bare = medicapp();
    bare.continuity = reprise_plan::Continuity::default();
    for plan in [full, bare] {
    let ev = Evidence {
        measured_at: at(NOW),
        components: plan.components.keys().map(|c| ComponentEvidence { component: c.clone(), state: Measurement::Unavailable { reason: "the repository is unreachable".into() } }).collect(),
        drills: Vec::new(),
        drills_unavailable: None,
    };
    for lang in [Lang::Fr, Lang::En] {
        let doc = document(&plan, &ev, &DocumentOptions { lang });
        // The model, before any renderer escapes it (Markdown writes `_` as `\_`).
        let model = serde_json::to_string(&doc).expect("json");
        for placeholder in ["REMPLIR", "___", "[DATE", "[NOM", "TODO"] {
            assert!(!model.contains(placeholder), "{placeholder:?} in the document model");
        }
        let md = reprise_report::markdown::render(&doc);
        // The signature block alone has lines for a pen (date, signature).
        let facts = &md[..md.find(lang.pick("## Approbation", "## Approval")).expect("approval section")];
        for placeholder in ["À REMPLIR", "A REMPLIR", "___", "[DATE", "[NOM", "TODO", "| |"] {
            assert!(!facts.contains(placeholder), "{placeholder:?} in:\n{facts}");
        }
        assert!(md.contains(lang.pick("aucun exercice enregistré", "no drill recorded")), "{md}");
        assert!(md.contains("the repository is unreachable"), "{md}");
    }
    }
}
