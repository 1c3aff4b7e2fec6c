//! A drill record as the plan owner reads it: the seed plan's §10.2
//! checklist ("Test Restauration Base de Données") and §10.4 report, filled
//! with what the drill measured, a table of the timed phases, the
//! objectives and their verdicts, the RTO of every drill of the same name
//! (a chart in HTML and PDF), and a signature block.
//!
//! Built from the stored record, never from a drill in memory, so a report
//! rendered today and one rendered in ten years say the same. French by
//! default (the plan owner's language), English on request; the record
//! itself is language-free.

use reprise_report::{Bar, Block, Chart, Check, Document, Field, Lang, Level, Outcome as Mark, Section, Signature, Table, Threshold};

use super::StoredDrill;
use super::record::{DrillVerdict, Outcome, Validation};

/// `1 h 02 min 03 s`, `4 min 12 s`, `2.5 s`, `340 ms`.
#[must_use]
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..60 => format!("{:.1} s", ms as f64 / 1000.0),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min {:02} s", s / 3600, s % 3600 / 60, s % 60),
    }
}

/// The seed's `__h__min` (seconds rounded up: 61 s is `0h02min`, never
/// less than what was measured).
#[must_use]
pub fn hours_minutes(ms: u64) -> String {
    let minutes = ms.div_ceil(60_000);
    format!("{}h{:02}min", minutes / 60, minutes % 60)
}

fn mark(o: Outcome) -> Mark {
    match o {
        Outcome::Pass => Mark::Pass,
        Outcome::Fail => Mark::Fail,
        Outcome::Skipped => Mark::Skipped,
    }
}

fn check(label: impl Into<String>, outcome: Mark, expected: Option<String>, measured: Option<String>, detail: Option<String>) -> Check {
    Check { label: label.into(), outcome, expected, measured, detail }
}

fn pass_if(ok: bool) -> Mark {
    if ok { Mark::Pass } else { Mark::Fail }
}

fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn phase_name(lang: Lang, phase: &str) -> String {
    match phase {
        "restore-files" => lang.pick("Lecture et écriture des fichiers", "Fetch and write files"),
        "startup-consistent" => lang.pick("Démarrage jusqu'à l'état cohérent", "Start-up until consistent"),
        "wal-replay" => lang.pick("Rejeu des WAL jusqu'à la cible, promotion", "WAL replay to the target, promotion"),
        "validation" => lang.pick("Validation", "Validation"),
        "cleanup" => lang.pick("Arrêt et suppression de la copie", "Stop and removal of the copy"),
        other => other,
    }
    .to_owned()
}

fn validation_check(v: &Validation) -> Check {
    check(v.label.clone(), mark(v.outcome), v.expected.clone(), v.measured.clone(), v.detail.clone())
}

/// The report of `drill`, with `history` (drills of the same name, oldest
/// first, this one included) for the RTO chart.
#[must_use]
pub fn build(drill: &StoredDrill, history: &[StoredDrill], lang: Lang) -> Document {
    let r = &drill.record;
    let l = |fr: &'static str, en: &'static str| lang.pick(fr, en).to_owned();
    let passed = r.verdict == DrillVerdict::Passed;
    let rto_objective = r.objectives.iter().filter(|o| o.objective == "rto").map(|o| o.target_ms).min();
    let restore_ms: u64 = r.phases.iter().filter(|p| p.phase != "validation" && p.phase != "cleanup").map(|p| p.ms).sum();
    let by_kind = |kind: &'static str| r.validations.iter().filter(move |v| v.kind == kind);
    let databases: Vec<&str> = r.components.iter().filter(|c| c.kind == "postgres").map(|c| c.name.as_str()).collect();

    let mut doc = Document {
        lang,
        title: format!("{} — {}", l("Test de restauration", "Restore drill"), r.drill),
        subtitle: Some(format!("{} {}", l("Plan", "Plan"), if r.plan.is_empty() { "—" } else { &r.plan })),
        meta: vec![
            Field::new(l("Date", "Date"), time(r.started)),
            Field::new(l("Testeur", "Tester"), format!("reprise ({}@{})", r.user, r.host)),
            Field::new(l("Enregistrement", "Record"), drill.id.to_hex()),
            Field::new(l("Résultat", "Result"), if passed { l("SUCCÈS", "SUCCESS") } else { l("ÉCHEC", "FAILURE") }),
        ],
        sections: Vec::new(),
    };

    // §10.2, line by line.
    let mut prep = vec![
        check(
            l("Identifier point de restauration cible", "Identify the target restore point"),
            Mark::Pass,
            Some(r.target.clone()),
            Some(time(r.target_time)),
            Some(r.components.iter().map(|c| format!("{}: {}", c.name, c.snapshot.as_deref().map_or("—", |s| &s[..s.len().min(12)]))).collect::<Vec<_>>().join(", ")),
        ),
    ];
    let restored_bytes: u64 = r.components.iter().map(|c| c.bytes).sum();
    prep.push(check(
        l("Vérifier espace disponible", "Check free space"),
        pass_if(r.failure.is_none()),
        None,
        Some(format!("{} {}", restored_bytes, l("octets restaurés", "bytes restored"))),
        Some(r.scratch.path.clone()),
    ));
    prep.push(check(l("Prévenir équipe technique", "Warn the technical team"), Mark::Skipped, None, None, Some(l("hors de reprise : à faire par le testeur", "outside reprise: the tester's task"))));
    let mut exec = vec![check(l("Lancer commande restauration", "Run the restore command"), Mark::Pass, None, Some(format!("reprise drill run {}", r.drill)), None)];
    exec.push(check(
        format!("{} {} min)", l("Attendre fin restauration (noter durée :", "Wait for the restore to end (duration:"), r.rto_ms.div_ceil(60_000)),
        pass_if(r.failure.is_none()),
        None,
        Some(duration(r.rto_ms)),
        r.failure.clone(),
    ));
    for db in &databases {
        let c = r.components.iter().find(|c| c.name == *db);
        exec.push(check(
            format!("{} ({db})", l("Vérifier état serveur restauré", "Check the restored server")),
            pass_if(c.is_some_and(|c| c.reached_lsn.is_some())),
            None,
            c.and_then(|c| c.reached_lsn.as_ref()).map(|lsn| format!("{} {lsn}", l("promu, LSN", "promoted, LSN"))),
            None,
        ));
    }
    let mut valid: Vec<Check> = by_kind("connection").map(validation_check).collect();
    valid.extend(by_kind("sql").map(|v| {
        let mut c = validation_check(v);
        // The seed's wording: "Nombre de patients correct (attendu: ___, réel: ___)".
        if let (Some(e), Some(m)) = (&v.expected, &v.measured) {
            c.label = format!("{} ({} {e}, {} {m})", v.label, l("attendu :", "expected:"), l("réel :", "actual:"));
            (c.expected, c.measured) = (None, None);
        }
        c
    }));
    valid.extend(by_kind("documents-newest").chain(by_kind("documents-referenced")).map(validation_check));
    valid.extend(by_kind("amcheck").chain(by_kind("read-data")).map(validation_check));
    let cleanup_ms = r.phases.iter().filter(|p| p.phase == "cleanup").map(|p| p.ms).sum::<u64>();
    let clean = vec![
        check(
            l("Supprimer serveur de test", "Remove the test server"),
            pass_if(r.scratch.removed),
            None,
            Some(if r.scratch.removed { format!("{} ({})", l("arrêté et supprimé", "stopped and removed"), duration(cleanup_ms)) } else { l("NON SUPPRIMÉ", "NOT REMOVED") }),
            r.scratch.error.clone(),
        ),
        check(l("Documenter résultats", "Document the results"), Mark::Pass, None, Some(format!("{} {}", l("enregistrement", "record"), drill.id.short())), None),
    ];
    let rto_line = match rto_objective {
        Some(obj) => format!("{} ({} < {})", l("SUCCÈS - RTO respecté", "SUCCESS - RTO met"), hours_minutes(r.rto_ms), hours_minutes(obj)),
        None => format!("{} ({})", l("SUCCÈS - RTO mesuré", "SUCCESS - RTO measured"), hours_minutes(r.rto_ms)),
    };
    let mut result = vec![check(rto_line, pass_if(passed), rto_objective.map(hours_minutes), Some(hours_minutes(r.rto_ms)), None)];
    if !passed {
        result.push(check(format!("{} {}", l("ÉCHEC - Raison :", "FAILURE - Reason:"), reasons(r, lang).join("; ")), Mark::Fail, None, None, None));
    }
    doc.sections.push(
        Section::new(l("Checklist test restauration (PRA §10.2)", "Restore test checklist (plan §10.2)"))
            .with(Block::Paragraph { text: l("Préparation", "Preparation") })
            .with(Block::Checklist { items: prep })
            .with(Block::Paragraph { text: l("Exécution", "Execution") })
            .with(Block::Checklist { items: exec })
            .with(Block::Paragraph { text: l("Validation", "Validation") })
            .with(Block::Checklist { items: valid })
            .with(Block::Paragraph { text: l("Nettoyage", "Clean-up") })
            .with(Block::Checklist { items: clean })
            .with(Block::Paragraph { text: l("Résultat", "Result") })
            .with(Block::Checklist { items: result }),
    );

    // Measured figures.
    let mut phases = Table { header: vec![l("Phase", "Phase"), l("Composant", "Component"), l("Détail", "Detail"), l("Durée", "Duration")], rows: Vec::new(), numeric: vec![false, false, false, true] };
    for p in &r.phases {
        phases.rows.push(vec![phase_name(lang, &p.phase), p.component.clone().unwrap_or_default(), p.label.clone().unwrap_or_default(), duration(p.ms)]);
    }
    phases.rows.push(vec![l("RTO total (restauration jusqu'au service)", "Total RTO (restore until in service)"), String::new(), String::new(), duration(r.rto_ms)]);
    let mut objectives = Table { header: vec![l("Composant", "Component"), l("Objectif", "Objective"), l("Cible", "Target"), l("Mesuré", "Measured"), l("Verdict", "Verdict")], rows: Vec::new(), numeric: vec![false, false, true, true, false] };
    for o in &r.objectives {
        objectives.rows.push(vec![
            o.component.clone(),
            o.objective.to_uppercase(),
            duration(o.target_ms),
            o.measured_ms.map_or_else(|| l("non mesuré", "not measured"), duration),
            Mark::label(pass_if(o.met), lang).to_owned(),
        ]);
    }
    let mut restored = Table {
        header: vec![l("Composant", "Component"), l("Sauvegarde", "Backup"), l("Dernière donnée restaurée", "Newest data restored"), l("Fenêtre de perte", "Data-loss window"), l("Fichiers", "Files")],
        rows: Vec::new(),
        numeric: vec![false, false, false, true, true],
    };
    for c in &r.components {
        restored.rows.push(vec![
            c.name.clone(),
            c.snapshot.as_deref().map_or_else(String::new, |s| s[..s.len().min(12)].to_owned()),
            c.last_restored.map_or_else(String::new, time),
            c.data_loss_ms.map_or_else(String::new, duration),
            c.files.to_string(),
        ]);
    }
    doc.sections.push(
        Section::new(l("Mesures", "Measurements"))
            .with(Block::Table(phases))
            .with(Block::Table(restored))
            .with(Block::Paragraph {
                text: l(
                    "Fenêtre de perte : entre le point visé et la dernière transaction rejouée (base) ou la sauvegarde (fichiers) ; une base sans écriture récente la surestime.",
                    "Data-loss window: from the target point back to the last transaction replayed (database) or the backup (files); a database with no recent write overstates it.",
                ),
            })
            .with(Block::Table(objectives)),
    );

    // §10.4.
    let problems = reasons(r, lang);
    let report = vec![
        Field::new(l("1. Date et type de test", "1. Date and type of test"), format!("{} — {} ({})", time(r.started), l("restauration", "restore"), r.components.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" + "))),
        Field::new(l("2. Participants", "2. Participants"), format!("reprise ({}@{}){}", r.user, r.host, r.owner.as_ref().map(|o| format!(", {o}")).unwrap_or_default())),
        Field::new(
            l("3. Scénario exécuté", "3. Scenario run"),
            format!("{} {} ({}) {}", l("restauration au point", "restore to"), time(r.target_time), r.target, l("dans une copie isolée, supprimée après", "into an isolated copy, removed afterwards")),
        ),
        Field::new(
            l("4. Durée effective vs objectif", "4. Actual duration vs objective"),
            format!("{} / {}", duration(restore_ms.max(r.rto_ms)), rto_objective.map_or_else(|| l("aucun objectif RTO", "no RTO objective"), duration)),
        ),
        Field::new(l("5. Problèmes rencontrés", "5. Problems found"), if problems.is_empty() { l("aucun", "none") } else { problems.join("; ") }),
        Field::new(
            l("6. Actions correctives", "6. Corrective actions"),
            if problems.is_empty() { l("aucune", "none") } else { l("analyser chaque problème ci-dessus, corriger, relancer le test", "analyse each problem above, fix it, run the drill again") },
        ),
        Field::new(
            l("7. Mise à jour du PRA si nécessaire", "7. Plan update if needed"),
            if r.objectives.iter().all(|o| o.met) { l("non nécessaire : objectifs tenus", "not needed: objectives met") } else { l("oui : un objectif n'est pas tenu", "yes: an objective is not met") },
        ),
    ];
    doc.sections.push(Section::new(l("Rapport de test (PRA §10.4)", "Test report (plan §10.4)")).with(Block::Fields { fields: report }));

    // History and chart.
    let mut table = Table { header: vec![l("Date", "Date"), l("Enregistrement", "Record"), l("RTO", "RTO"), l("Résultat", "Result")], rows: Vec::new(), numeric: vec![false, false, true, false] };
    let mut bars = Vec::new();
    for h in history {
        let ok = h.record.verdict == DrillVerdict::Passed;
        table.rows.push(vec![time(h.record.started), h.id.short(), duration(h.record.rto_ms), Mark::label(pass_if(ok), lang).to_owned()]);
        bars.push(Bar { label: h.record.started.strftime("%m-%d %H:%M").to_string(), value: h.record.rto_ms as f64 / 1000.0, failed: !ok });
    }
    let chart = Chart {
        title: l("RTO mesuré par test (s)", "Measured RTO per drill (s)"),
        unit: "s".into(),
        bars,
        threshold: rto_objective.map(|o| Threshold { label: format!("{} {}", l("objectif", "objective"), duration(o)), value: o as f64 / 1000.0 }),
    };
    doc.sections.push(Section::new(l("Historique des tests", "Drill history")).with(Block::Table(table)).with(Block::Chart(chart)));

    let notice = if passed {
        Block::Notice { level: Level::Info, text: l("Test réussi : toutes les validations et tous les objectifs sont tenus, la copie de test est supprimée.", "Drill passed: every validation and objective met, the test copy removed.") }
    } else {
        Block::Notice { level: Level::Critical, text: format!("{} {}", l("Test en échec :", "Drill failed:"), problems.join("; ")) }
    };
    doc.sections.insert(0, Section::new(l("Résultat", "Result")).with(notice));
    doc.sections.push(Section::new(l("Signature", "Signature")).with(Block::Signature(Signature { role: l("Responsable du PRA", "Plan owner"), name: r.owner.clone() })));
    doc
}

/// What went wrong, one phrase each.
fn reasons(r: &super::record::DrillRecord, lang: Lang) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = &r.failure {
        out.push(f.clone());
    }
    for v in r.validations.iter().filter(|v| v.outcome == Outcome::Fail) {
        out.push(format!("{}: {}", v.label, v.detail.clone().or_else(|| v.measured.clone()).unwrap_or_default()));
    }
    for o in r.objectives.iter().filter(|o| !o.met) {
        out.push(format!("{} {} {}: {}", o.objective.to_uppercase(), lang.pick("de", "of"), o.component, o.measured_ms.map_or_else(|| lang.pick("non mesuré", "not measured").to_owned(), duration)));
    }
    if !r.scratch.removed {
        out.push(format!("{} {}", lang.pick("copie de test non supprimée :", "test copy not removed:"), r.scratch.path));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::record::{ComponentResult, DrillRecord, ObjectiveResult, Phase, SCHEMA, ScratchResult};
    use reprise_engine::format::Id;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("time")
    }

    fn v(kind: &str, label: &str, outcome: Outcome, expected: Option<&str>, measured: Option<&str>, detail: Option<&str>) -> Validation {
        Validation { kind: kind.into(), label: label.into(), outcome, expected: expected.map(Into::into), measured: measured.map(Into::into), detail: detail.map(Into::into), ms: 120 }
    }

    /// A drill as `drill run` records it (fixed times and IDs: the
    /// snapshot is stable).
    fn sample(verdict: DrillVerdict) -> StoredDrill {
        let failed = verdict == DrillVerdict::Failed;
        let record = DrillRecord {
            schema: SCHEMA.into(),
            drill: "monthly".into(),
            plan: "MedicApp".into(),
            started: at("2026-11-26T03:00:00Z"),
            finished: at("2026-11-26T03:04:10Z"),
            host: "ops-1".into(),
            user: "reprise".into(),
            owner: Some("Dr Claire Martin".into()),
            target: "latest".into(),
            target_time: at("2026-11-26T03:00:00Z"),
            components: vec![
                ComponentResult {
                    name: "medicapp-db".into(),
                    kind: "postgres".into(),
                    snapshot: Some("ab".repeat(32)),
                    snapshot_time: Some(at("2026-11-26T01:00:00Z")),
                    wal_segments: 12,
                    files: 1500,
                    bytes: 250_000_000,
                    last_restored: Some(at("2026-11-26T02:59:30Z")),
                    reached_lsn: Some("0/5000060".into()),
                    data_loss_ms: Some(30_000),
                    ready_after_ms: Some(190_000),
                },
                ComponentResult {
                    name: "signed-documents".into(),
                    kind: "files".into(),
                    snapshot: Some("cd".repeat(32)),
                    snapshot_time: Some(at("2026-11-26T02:30:00Z")),
                    wal_segments: 0,
                    files: 3000,
                    bytes: 90_000_000,
                    last_restored: Some(at("2026-11-26T02:30:00Z")),
                    reached_lsn: None,
                    data_loss_ms: Some(1_800_000),
                    ready_after_ms: Some(230_000),
                },
            ],
            phases: vec![
                Phase { phase: "restore-files".into(), component: Some("medicapp-db".into()), label: None, ms: 150_000 },
                Phase { phase: "startup-consistent".into(), component: Some("medicapp-db".into()), label: None, ms: 4_000 },
                Phase { phase: "wal-replay".into(), component: Some("medicapp-db".into()), label: None, ms: 36_000 },
                Phase { phase: "restore-files".into(), component: Some("signed-documents".into()), label: None, ms: 40_000 },
                Phase { phase: "validation".into(), component: Some("medicapp-db".into()), label: Some("Nombre de patients correct".into()), ms: 120 },
                Phase { phase: "cleanup".into(), component: None, label: None, ms: 900 },
            ],
            validations: vec![
                v("connection", "Connexion possible à la base", Outcome::Pass, None, Some("medicapp-db/medicapp"), None),
                v("sql", "Nombre de patients correct", if failed { Outcome::Fail } else { Outcome::Pass }, Some("1000"), Some(if failed { "990" } else { "1000" }), None),
                v("documents-newest", "Derniers documents présents", Outcome::Pass, Some("10"), Some("10"), None),
                v("documents-referenced", "Documents référencés présents", Outcome::Pass, Some("3000"), Some("3000"), None),
                v("amcheck", "pg_amcheck (tables et index)", Outcome::Pass, Some("0"), Some("0"), None),
            ],
            rto_ms: 230_000,
            objectives: vec![
                ObjectiveResult { component: "medicapp-db".into(), objective: "rto".into(), target_ms: 7_200_000, measured_ms: Some(190_000), met: true },
                ObjectiveResult { component: "medicapp-db".into(), objective: "rpo".into(), target_ms: 3_600_000, measured_ms: Some(30_000), met: true },
            ],
            scratch: ScratchResult { path: "/var/tmp/reprise-drills/reprise-drill-monthly-0a1b2c3d4e5f".into(), removed: true, error: None },
            leftovers: Vec::new(),
            verdict,
            failure: None,
        };
        StoredDrill { id: Id([7; 32]), record }
    }

    #[test]
    fn the_markdown_report_fills_the_seed_checklist() {
        let d = sample(DrillVerdict::Passed);
        let md = reprise_report::markdown::render(&build(&d, std::slice::from_ref(&d), Lang::Fr));
        insta::assert_snapshot!(md);
    }

    #[test]
    fn a_failed_drill_says_why_in_the_checklist_and_the_report() {
        let d = sample(DrillVerdict::Failed);
        let md = reprise_report::markdown::render(&build(&d, std::slice::from_ref(&d), Lang::Fr));
        assert!(md.contains("ÉCHEC - Raison : Nombre de patients correct: 990"), "{md}");
        assert!(md.contains("Nombre de patients correct (attendu : 1000, réel : 990)"), "{md}");
        let en = reprise_report::markdown::render(&build(&d, std::slice::from_ref(&d), Lang::En));
        assert!(en.contains("FAILURE - Reason:") && !en.contains("Raison"), "{en}");
    }

    #[test]
    fn durations_as_the_seed_writes_them() {
        assert_eq!(hours_minutes(0), "0h00min");
        assert_eq!(hours_minutes(61_000), "0h02min", "rounded up, never below what was measured");
        assert_eq!(hours_minutes(7_200_000), "2h00min");
        assert_eq!(duration(340), "340 ms");
        assert_eq!(duration(72_000), "1 min 12 s");
        assert_eq!(duration(3_723_000), "1 h 02 min 03 s");
    }
}
