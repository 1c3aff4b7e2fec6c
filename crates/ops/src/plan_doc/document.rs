//! The PRA/PCA document, in the seed's structure, written from the plan
//! and the evidence.
//!
//! The seed's sections, in its order: objectives, scope and
//! responsibilities (with the escalation ladder and the legal retention
//! of each kind of data), external dependencies, RPO/RTO objectives next
//! to what is achieved now and what the last drill measured, the backup
//! architecture with its retention inventory, 3-2-1 posture and
//! immutability, the disaster scenarios and the restoration procedures
//! with the reprise commands that restore *this* plan's components,
//! contacts, tests and exercises, maintenance, revision history, and the
//! owner's signature. Every fact comes from the plan or from the
//! evidence; a fact that is missing is named as missing, in words (the
//! seed's `[À REMPLIR]` and `___` never appear).

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use reprise_plan::{ComponentKind, ComponentPlan, Plan, PostgresMode};
use reprise_report::{Block, Check, Document, Field, Lang, Level, Outcome, Section, Signature, Table};

use super::{Evidence, Measured, Severity, lint};

/// How to write the document.
#[derive(Debug, Clone, Default)]
pub struct DocumentOptions {
    pub lang: Lang,
}

/// `2 h 30 min`, `45 s`, `7 d`: a length for a reader (English units;
/// [`human_in`] for a document's language).
#[must_use]
pub fn human(d: Duration) -> String {
    human_in(d, Lang::En)
}

/// A length in the document's language (`7 j` in French).
#[must_use]
pub fn human_in(d: Duration, lang: Lang) -> String {
    let s = d.as_secs();
    if s == 0 {
        return if d.is_zero() { "0 s".to_owned() } else { format!("{:.1} s", d.as_secs_f64()) };
    }
    if s < 60 {
        return format!("{s} s");
    }
    let day = lang.pick("j", "d");
    let mut parts = Vec::new();
    let (days, rest) = (s / 86_400, s % 86_400);
    if days > 0 {
        parts.push(format!("{days} {day}"));
    }
    let (hours, rest) = (rest / 3600, rest % 3600);
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    let (minutes, seconds) = (rest / 60, rest % 60);
    if minutes > 0 {
        parts.push(format!("{minutes} min"));
    }
    if seconds > 0 && days == 0 && hours == 0 {
        parts.push(format!("{seconds} s"));
    }
    parts.join(" ")
}

fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn kind(c: &ComponentPlan, lang: Lang) -> String {
    match &c.kind {
        ComponentKind::Files => lang.pick("fichiers", "files").to_owned(),
        ComponentKind::Postgres(pg) if pg.mode == PostgresMode::Physical => lang.pick("PostgreSQL (physique + WAL)", "PostgreSQL (physical + WAL)").to_owned(),
        ComponentKind::Postgres(_) => lang.pick("PostgreSQL (logique, pg_dump)", "PostgreSQL (logical, pg_dump)").to_owned(),
    }
}

fn what_it_holds(c: &ComponentPlan, lang: Lang) -> String {
    match &c.kind {
        ComponentKind::Files => c.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        ComponentKind::Postgres(pg) => pg.data_directory.as_ref().map_or_else(
            || if pg.databases.is_empty() { lang.pick("toutes les bases du serveur", "every database of the server").to_owned() } else { pg.databases.join(", ") },
            |d| d.display().to_string(),
        ),
    }
}

/// The shell-quoted plan path, as commands name it.
fn plan_arg(plan: &Plan) -> String {
    let p = plan.file.display().to_string();
    if p.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b)) { p } else { format!("'{}'", p.replace('\'', "'\\''")) }
}

struct Words {
    lang: Lang,
}

impl Words {
    fn t<'a>(&self, fr: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(fr, en)
    }
    fn missing(&self, fr: &str, en: &str) -> String {
        self.t(fr, en).to_owned()
    }
    fn dur(&self, d: Option<Duration>, none_fr: &str, none_en: &str) -> String {
        d.map_or_else(|| self.missing(none_fr, none_en), |d| human_in(d, self.lang))
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> Block {
    Block::Table(Table { header: header.iter().map(|h| (*h).to_owned()).collect(), numeric: vec![false; header.len()], rows })
}

fn para(text: impl Into<String>) -> Block {
    Block::Paragraph { text: text.into() }
}

/// The document, from the plan and the evidence.
#[must_use]
pub fn document(plan: &Plan, evidence: &Evidence, options: &DocumentOptions) -> Document {
    let lang = options.lang;
    let w = Words { lang };
    let cont = &plan.continuity;
    let findings = lint(plan, evidence);
    let name = if plan.name.is_empty() { plan.file.display().to_string() } else { plan.name.clone() };
    let owner = cont.review.owner.as_ref().and_then(|o| cont.contacts.get(o));

    let mut meta = vec![
        Field::new(w.t("Plan", "Plan"), plan.file.display().to_string()),
        Field::new(w.t("Version", "Version"), cont.review.version.clone().unwrap_or_else(|| w.missing("non renseignée dans le plan ([review] version)", "not set in the plan ([review] version)"))),
        Field::new(w.t("Mesures du", "Measured at"), when(evidence.measured_at)),
        Field::new(
            w.t("Dernière revue", "Last review"),
            cont.review.reviewed.map_or_else(|| w.missing("aucune revue enregistrée ([review] reviewed)", "no review recorded ([review] reviewed)"), |d| d.to_string()),
        ),
        Field::new(w.t("Prochaine revue", "Next review"), cont.review.next.map_or_else(|| w.missing("non planifiée", "not planned"), |d| d.to_string())),
        Field::new(
            w.t("Responsable du plan", "Plan owner"),
            owner.map_or_else(|| w.missing("non désigné ([review] owner)", "not named ([review] owner)"), |c| format!("{} — {}", c.name, c.role)),
        ),
    ];
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = findings.len() - errors;
    meta.push(Field::new(
        w.t("État", "State"),
        if findings.is_empty() {
            w.t("conforme : aucun constat (section 12)", "compliant: no finding (section 12)").to_owned()
        } else {
            format!("{errors} {}, {warnings} {} (section 12)", w.t("non-conformité(s)", "error(s)"), w.t("avertissement(s)", "warning(s)"))
        },
    ));

    let mut sections = Vec::new();

    // 1. Introduction.
    sections.push(
        Section::new(w.t("1. Introduction et objectifs", "1. Introduction and objectives"))
            .with(para(w.t(
                "Ce document est le Plan de Reprise d'Activité et de Continuité d'Activité (PRA/PCA). Il est écrit par `reprise plan render` à partir du plan (reprise.toml) et de ce que les dépôts de sauvegarde mesurent au moment de sa génération : chaque chiffre est une mesure ou une déclaration du plan, et ce qui manque est dit manquant.",
                "This document is the disaster recovery and business continuity plan. It is written by `reprise plan render` from the plan (reprise.toml) and from what the backup repositories measure when it is generated: every figure is a measurement or a declaration of the plan, and what is missing is said to be missing.",
            )))
            .with(table(
                &[w.t("Objectif", "Objective"), w.t("Description", "Description")],
                vec![
                    vec![w.t("Continuité", "Continuity").into(), w.t("Maintenir les services critiques pendant un incident", "Keep critical services running during an incident").into()],
                    vec![w.t("Reprise", "Recovery").into(), w.t("Restaurer l'ensemble des services après un sinistre majeur", "Restore every service after a major disaster").into()],
                    vec![w.t("Protection", "Protection").into(), w.t("Préserver l'intégrité des données de santé", "Preserve the integrity of health data").into()],
                    vec![w.t("Conformité", "Compliance").into(), w.t("Respecter les durées légales de conservation déclarées (section 2.2)", "Keep data for the legal durations declared (section 2.2)").into()],
                ],
            )),
    );

    // 2. Scope and responsibilities.
    let mut scope = Section::new(w.t("2. Périmètre et responsabilités", "2. Scope and responsibilities")).with(table(
        &[w.t("Composant", "Component"), w.t("Type", "Type"), w.t("Contenu", "Content"), w.t("Dépôt", "Repository")],
        plan.components.values().map(|c| vec![c.name.clone(), kind(c, lang), what_it_holds(c, lang), c.repository.clone()]).collect(),
    ));
    scope = scope.with(para(w.t("2.2 Durées légales de conservation", "2.2 Legal retention")));
    if cont.legal.is_empty() {
        scope = scope.with(Block::Notice { level: Level::Warning, text: w.missing("Aucune durée légale de conservation n'est déclarée dans le plan ([legal.NOM]).", "No legal retention is declared in the plan ([legal.NAME]).") });
    } else {
        scope = scope.with(table(
            &[w.t("Données", "Data"), w.t("Durée légale", "Legal duration"), w.t("Composants", "Components"), w.t("Fondement", "Basis")],
            cont.legal
                .values()
                .map(|l| vec![l.data.clone(), l.retain_text.clone(), l.components.join(", "), l.basis.clone().unwrap_or_else(|| w.missing("non précisé", "not given"))])
                .collect(),
        ));
    }
    scope = scope.with(para(w.t("2.3 Escalade", "2.3 Escalation")));
    if cont.escalation.is_empty() {
        scope = scope.with(Block::Notice { level: Level::Warning, text: w.missing("Aucune échelle d'escalade n'est déclarée dans le plan ([[escalation]]).", "No escalation ladder is declared in the plan ([[escalation]]).") });
    } else {
        let who = |ids: &[String]| ids.iter().map(|i| cont.contacts.get(i).map_or_else(|| i.clone(), |c| format!("{} ({})", c.name, c.role))).collect::<Vec<_>>().join(", ");
        scope = scope.with(table(
            &[w.t("Niveau", "Level"), w.t("Après détection", "After detection"), w.t("Qui", "Who"), w.t("Action", "Action")],
            cont.escalation.iter().map(|l| vec![l.level.to_string(), format!("T+{}", human_in(l.after, lang)), who(&l.who), l.action.clone()]).collect(),
        ));
    }
    sections.push(scope);

    // 3. Dependencies.
    let mut deps = Section::new(w.t("3. Dépendances externes", "3. External dependencies"));
    if cont.dependencies.is_empty() {
        deps = deps.with(Block::Notice { level: Level::Warning, text: w.missing("Aucune dépendance externe n'est déclarée dans le plan ([dependencies.NOM]).", "No external dependency is declared in the plan ([dependencies.NAME]).") });
    } else {
        let crit = |c: reprise_plan::continuity::Criticality| match c {
            reprise_plan::continuity::Criticality::Critical => w.t("Critique", "Critical").to_owned(),
            reprise_plan::continuity::Criticality::Important => w.t("Important", "Important").to_owned(),
            reprise_plan::continuity::Criticality::Low => w.t("Faible", "Low").to_owned(),
        };
        deps = deps.with(table(
            &[w.t("Service externe", "External service"), w.t("Criticité", "Criticality"), w.t("Alternative", "Alternative"), w.t("Support", "Support")],
            cont.dependencies
                .values()
                .map(|d| {
                    vec![
                        d.service.clone(),
                        crit(d.criticality),
                        d.alternative.clone().unwrap_or_else(|| w.missing("aucune", "none")),
                        d.contact.clone().unwrap_or_else(|| w.missing("non renseigné", "not given")),
                    ]
                })
                .collect(),
        ));
    }
    sections.push(deps);

    // 4. Objectives against what is achieved.
    let mut objectives = Section::new(w.t("4. Objectifs RPO/RTO et valeurs atteintes", "4. RPO/RTO objectives and achieved values")).with(para(w.t(
        "Le RPO atteint est la perte de données si le composant disparaissait au moment de la mesure (les données non encore sauvegardées) ; le RTO mesuré est la durée de la dernière restauration d'exercice.",
        "The achieved RPO is the data that would be lost if the component vanished when measured (what is not backed up yet); the measured RTO is the duration of the last drill's restore.",
    )));
    let mut checks = Vec::new();
    let mut rows = Vec::new();
    for c in plan.components.values() {
        let ev = evidence.component(&c.name);
        let m = ev.and_then(super::ComponentEvidence::measured);
        let rpo_now = match (m, ev.map(|e| &e.state)) {
            (Some(m), _) => m.rpo_seconds.map_or_else(|| w.missing("aucune sauvegarde", "no backup"), |s| human_in(Duration::from_secs_f64(s), lang)),
            (None, Some(super::Measurement::Unavailable { reason })) => format!("{} ({reason})", w.t("non mesuré", "not measured")),
            _ => w.missing("non mesuré", "not measured"),
        };
        let last_rto = evidence
            .drills
            .iter()
            .filter_map(|d| d.objectives.iter().find(|v| v.component == c.name && v.objective == "rto" && v.measured.is_some()).map(|v| (d, v)))
            .max_by_key(|(d, _)| d.finished_at);
        let rto_cell = last_rto.map_or_else(
            || w.missing("aucun exercice enregistré", "no drill recorded"),
            |(d, v)| format!("{} ({})", human_in(v.measured.unwrap_or_default(), lang), d.finished_at.strftime("%Y-%m-%d")),
        );
        rows.push(vec![
            c.name.clone(),
            w.dur(c.objectives.rpo, "non fixé", "not set"),
            rpo_now.clone(),
            w.dur(c.objectives.rto, "non fixé", "not set"),
            rto_cell.clone(),
        ]);
        if let Some(o) = c.objectives.rpo {
            let (outcome, measured) = match m.and_then(|m| m.rpo_seconds) {
                Some(s) if s <= o.as_secs_f64() => (Outcome::Pass, rpo_now),
                Some(_) => (Outcome::Fail, rpo_now),
                None => (Outcome::Skipped, rpo_now),
            };
            checks.push(Check { label: format!("{} — RPO", c.name), outcome, expected: Some(format!("≤ {}", human_in(o, lang))), measured: Some(measured), detail: None });
        }
        if let Some(o) = c.objectives.rto {
            let (outcome, measured) = match last_rto.and_then(|(_, v)| v.measured) {
                Some(t) if t <= o => (Outcome::Pass, rto_cell),
                Some(_) => (Outcome::Fail, rto_cell),
                None => (Outcome::Skipped, rto_cell),
            };
            checks.push(Check { label: format!("{} — RTO", c.name), outcome, expected: Some(format!("≤ {}", human_in(o, lang))), measured: Some(measured), detail: None });
        }
    }
    objectives = objectives
        .with(table(&[w.t("Composant", "Component"), w.t("RPO objectif", "RPO objective"), w.t("RPO atteint", "RPO achieved"), w.t("RTO objectif", "RTO objective"), w.t("Dernier RTO mesuré", "Last measured RTO")], rows))
        .with(Block::Checklist { items: checks });
    sections.push(objectives);

    // 5. Backup architecture.
    let mut arch = Section::new(w.t("5. Architecture de sauvegarde", "5. Backup architecture")).with(table(
        &[w.t("Dépôt", "Repository"), w.t("Rôle", "Role"), w.t("Emplacement", "Location"), w.t("Site", "Site")],
        plan.repositories
            .values()
            .map(|r| {
                vec![
                    r.name.clone(),
                    r.copy_of.as_ref().map_or_else(|| w.t("principal", "primary").to_owned(), |o| format!("{} {o}", w.t("copie de", "copy of"))),
                    r.url.split('?').next().unwrap_or_default().to_owned(),
                    r.site.clone().unwrap_or_else(|| w.missing("non déclaré", "not declared")),
                ]
            })
            .collect(),
    ));
    arch = arch.with(para(w.t(
        "Toutes les sauvegardes sont chiffrées (AES-256-GCM), dédupliquées, et écrites une seule fois : aucun objet n'est réécrit. Chaque opération sensible est inscrite au registre de preuves (`reprise ledger verify`).",
        "Every backup is encrypted (AES-256-GCM), deduplicated and written once: no object is ever rewritten. Every sensitive operation is recorded in the evidence ledger (`reprise ledger verify`).",
    )));
    arch = arch.with(para(w.t("5.1 Rétention par composant", "5.1 Retention per component"))).with(table(
        &[w.t("Composant", "Component"), w.t("Politique", "Policy"), w.t("Conservation légale (retain_for)", "Legal hold (retain_for)"), w.t("Fenêtre PITR", "PITR window")],
        plan.components
            .values()
            .map(|c| {
                vec![
                    c.name.clone(),
                    retention_text(&c.objectives.retention, &w),
                    c.objectives.retain_for.map_or_else(|| w.missing("aucune", "none"), |p| p.to_string()),
                    c.objectives.pitr.map_or_else(|| w.missing("non applicable", "not applicable"), |p| p.to_string()),
                ]
            })
            .collect(),
    ));
    arch = arch.with(para(w.t("5.2 Inventaire des points de restauration (mesuré)", "5.2 Restorable points (measured)"))).with(table(
        &[w.t("Composant", "Component"), w.t("Instantanés", "Snapshots"), w.t("Plus ancien point", "Oldest point"), w.t("Plus récent point", "Newest point"), w.t("Dernière sauvegarde", "Last backup")],
        plan.components
            .values()
            .map(|c| match evidence.component(&c.name).map(|e| &e.state) {
                Some(super::Measurement::Measured(m)) => vec![
                    c.name.clone(),
                    m.snapshots.to_string(),
                    m.oldest_restorable.map_or_else(|| w.missing("aucun", "none"), when),
                    m.newest_restorable.map_or_else(|| w.missing("aucun", "none"), when),
                    m.last_backup.map_or_else(|| w.missing("aucune", "none"), when),
                ],
                Some(super::Measurement::Unavailable { reason }) => {
                    let r = format!("{} : {reason}", w.t("non mesuré", "not measured"));
                    vec![c.name.clone(), r.clone(), r.clone(), r.clone(), r]
                }
                None => vec![c.name.clone(), w.missing("non mesuré", "not measured"), String::new(), String::new(), String::new()],
            })
            .collect(),
    ));
    arch = arch.with(para(w.t("5.3 Copies (3-2-1) et immuabilité (mesurées)", "5.3 Copies (3-2-1) and immutability (measured)"))).with(table(
        &[w.t("Composant", "Component"), w.t("Copies", "Copies"), w.t("Supports", "Media"), w.t("Hors site", "Off-site"), "3-2-1", w.t("Immuabilité", "Immutability")],
        plan.components.values().map(|c| posture_row(c, evidence.component(&c.name).and_then(super::ComponentEvidence::measured), &w)).collect(),
    ));
    sections.push(arch);

    // 6. Scenarios and 7. procedures.
    sections.push(scenarios(plan, evidence, &w));
    sections.push(procedures(plan, evidence, &w));

    // 8. Contacts.
    let mut contacts = Section::new(w.t("8. Contacts d'urgence", "8. Emergency contacts"));
    if cont.contacts.is_empty() {
        contacts = contacts.with(Block::Notice { level: Level::Critical, text: w.missing("Aucun contact n'est déclaré dans le plan ([contacts.NOM]) : personne à appeler.", "No contact is declared in the plan ([contacts.NAME]): nobody to call.") });
    } else {
        contacts = contacts.with(table(
            &[w.t("Rôle", "Role"), w.t("Nom", "Name"), w.t("Téléphone", "Phone"), w.t("Email", "Email"), w.t("Disponibilité", "Availability"), w.t("Revu le", "Reviewed")],
            cont.contacts
                .values()
                .map(|c| {
                    vec![
                        c.role.clone(),
                        c.name.clone(),
                        c.phone.clone().unwrap_or_else(|| w.missing("aucun", "none")),
                        c.email.clone().unwrap_or_else(|| w.missing("aucun", "none")),
                        c.availability.clone().unwrap_or_else(|| w.missing("non précisée", "not given")),
                        c.reviewed.map_or_else(|| w.missing("jamais", "never"), |d| d.to_string()),
                    ]
                })
                .collect(),
        ));
    }
    sections.push(contacts);

    // 9. Tests and exercises.
    let mut tests = Section::new(w.t("9. Tests et exercices", "9. Tests and exercises"));
    if cont.tests.is_empty() {
        tests = tests.with(Block::Notice { level: Level::Warning, text: w.missing("Le plan n'exige aucun test de restauration ([tests.NOM]).", "The plan requires no restore test ([tests.NAME]).") });
    } else {
        tests = tests.with(table(
            &[w.t("Test", "Test"), w.t("Composants", "Components"), w.t("Fréquence", "Every"), w.t("Responsable", "Responsible"), w.t("Dernier exercice", "Last drill"), w.t("Verdict", "Verdict")],
            cont.tests
                .values()
                .map(|t| {
                    let last = evidence.last_drill_of(&t.components);
                    vec![
                        t.id.clone(),
                        t.components.join(", "),
                        t.every_text.clone(),
                        t.responsible.as_ref().map_or_else(|| w.missing("non désigné", "not named"), |r| cont.contacts.get(r).map_or_else(|| r.clone(), |c| c.name.clone())),
                        last.map_or_else(|| w.missing("aucun exercice enregistré", "no drill recorded"), |d| format!("{} ({})", when(d.finished_at), d.name)),
                        last.map_or_else(|| w.missing("sans objet", "n/a"), |d| Outcome::label(if d.passed { Outcome::Pass } else { Outcome::Fail }, lang).to_owned()),
                    ]
                })
                .collect(),
        ));
    }
    tests = tests.with(para(w.t("9.1 Derniers exercices enregistrés", "9.1 Last recorded drills")));
    if let Some(why) = &evidence.drills_unavailable {
        tests = tests.with(Block::Notice { level: Level::Warning, text: format!("{} {why}", w.t("Les exercices n'ont pas pu être lus :", "The drills could not be read:")) });
    } else if evidence.drills.is_empty() {
        tests = tests.with(Block::Notice { level: Level::Warning, text: w.missing("Aucun exercice enregistré : aucune restauration n'a encore été prouvée par `reprise drill run`.", "No drill recorded: no restore has been proven by `reprise drill run` yet.") });
    } else {
        let mut drills: Vec<_> = evidence.drills.iter().collect();
        drills.sort_by_key(|d| std::cmp::Reverse(d.finished_at));
        tests = tests.with(table(
            &[w.t("Date", "Date"), w.t("Exercice", "Drill"), w.t("Composants", "Components"), w.t("RTO mesuré", "Measured RTO"), w.t("Perte de données", "Data loss"), w.t("Verdict", "Verdict")],
            drills
                .into_iter()
                .take(10)
                .map(|d| {
                    vec![
                        when(d.finished_at),
                        format!("{} ({})", d.name, d.id.get(..8).unwrap_or(&d.id)),
                        d.components.join(", "),
                        w.dur(d.measured_rto, "non mesuré", "not measured"),
                        w.dur(d.achieved_rpo, "non mesurée", "not measured"),
                        Outcome::label(if d.passed { Outcome::Pass } else { Outcome::Fail }, lang).to_owned(),
                    ]
                })
                .collect(),
        ));
    }
    sections.push(tests);

    // 10. Maintenance.
    sections.push(
        Section::new(w.t("10. Maintenance du plan", "10. Plan maintenance"))
            .with(table(
                &[w.t("Événement", "Event"), w.t("Fréquence", "Every"), w.t("Dernière fois", "Last time")],
                vec![
                    vec![w.t("Revue complète du plan", "Full review of the plan").into(), cont.review.every.to_string(), cont.review.reviewed.map_or_else(|| w.missing("jamais", "never"), |d| d.to_string())],
                    vec![
                        w.t("Revue des contacts d'urgence", "Review of the emergency contacts").into(),
                        cont.review.contacts_every.to_string(),
                        cont.contacts.values().filter_map(|c| c.reviewed).min().map_or_else(|| w.missing("jamais", "never"), |d| format!("{} {d}", w.t("le plus ancien :", "oldest:"))),
                    ],
                ],
            ))
            .with(para(w.t(
                "Le plan est mis à jour à chaque changement d'hébergeur ou de région, ajout de composant critique, modification de la politique de sauvegarde, test révélant des lacunes, incident réel, changement réglementaire ou de contacts. `reprise plan lint` signale ce qui est périmé (section 12).",
                "The plan is updated on every change of hosting provider or region, new critical component, change of backup policy, test revealing a gap, real incident, regulatory change or change of contacts. `reprise plan lint` reports what is stale (section 12).",
            ))),
    );

    // 11. Revision history.
    let mut history = Section::new(w.t("11. Historique des révisions", "11. Revision history"));
    if cont.revisions.is_empty() {
        history = history.with(Block::Notice { level: Level::Info, text: w.missing("Aucune révision n'est déclarée dans le plan ([[revisions]]).", "No revision is declared in the plan ([[revisions]]).") });
    } else {
        history = history.with(table(
            &[w.t("Version", "Version"), w.t("Date", "Date"), w.t("Auteur", "Author"), w.t("Modifications", "Changes")],
            cont.revisions.iter().map(|r| vec![r.version.clone(), r.date.to_string(), r.author.clone(), r.changes.clone()]).collect(),
        ));
    }
    sections.push(history);

    // 12. Findings.
    let mut lint_section = Section::new(w.t("12. Constats (`reprise plan lint`)", "12. Findings (`reprise plan lint`)"));
    if findings.is_empty() {
        lint_section = lint_section.with(para(w.t("Aucun constat : le plan et les mesures concordent.", "No finding: the plan and the measurements agree.")));
    } else {
        lint_section = lint_section.with(Block::Checklist {
            items: findings
                .iter()
                .map(|f| Check {
                    label: format!("[{}] {}", f.code, f.message),
                    outcome: if f.severity == Severity::Error { Outcome::Fail } else { Outcome::Warn },
                    expected: None,
                    measured: None,
                    detail: Some(format!("{} {}", w.t("correctif :", "fix:"), f.fix)),
                })
                .collect(),
        });
    }
    sections.push(lint_section);

    sections.push(Section::new(w.t("Approbation", "Approval")).with(Block::Signature(Signature {
        role: owner.map_or_else(|| w.t("Responsable du plan", "Plan owner").to_owned(), |c| c.role.clone()),
        name: owner.map(|c| c.name.clone()),
    })));

    Document {
        lang,
        title: w.t("Plan de Reprise d'Activité (PRA) et Plan de Continuité d'Activité (PCA)", "Disaster Recovery and Business Continuity Plan").to_owned(),
        subtitle: Some(name),
        meta,
        sections,
    }
}

fn retention_text(r: &reprise_plan::RetentionPolicy, w: &Words) -> String {
    if r.is_empty() {
        return w.missing("aucune (tout est gardé jusqu'à `forget`)", "none (everything is kept until `forget`)");
    }
    let mut parts = Vec::new();
    if let Some(n) = r.keep_last {
        parts.push(format!("{n} {}", w.t("derniers", "last")));
    }
    if let Some(p) = r.keep_within {
        parts.push(format!("{} {p}", w.t("tout sur", "all within")));
    }
    for (n, fr, en) in [(r.hourly, "horaires", "hourly"), (r.daily, "quotidiens", "daily"), (r.weekly, "hebdomadaires", "weekly"), (r.monthly, "mensuels", "monthly"), (r.yearly, "annuels", "yearly")] {
        if let Some(n) = n {
            parts.push(format!("{n} {}", w.t(fr, en)));
        }
    }
    parts.join(", ")
}

fn posture_row(c: &ComponentPlan, m: Option<&Measured>, w: &Words) -> Vec<String> {
    let Some(m) = m else {
        let n = w.missing("non mesuré", "not measured");
        return vec![c.name.clone(), n.clone(), n.clone(), n.clone(), n.clone(), n];
    };
    let yes_no = |b: bool| if b { w.t("oui", "yes").to_owned() } else { w.t("non", "no").to_owned() };
    let immutability = match (c.objectives.immutable || c.objectives.retain_for.is_some(), m.immutability_in_force) {
        (_, Some(true)) => format!("{} — {}", w.t("en vigueur", "in force"), m.immutability_reason.clone().unwrap_or_default()),
        (true, _) => format!("{} — {}", w.t("demandée, PAS en vigueur", "asked, NOT in force"), m.immutability_reason.clone().unwrap_or_default()),
        (false, _) => w.missing("non demandée", "not asked"),
    };
    vec![
        c.name.clone(),
        m.copies.to_string(),
        if m.media.is_empty() { w.missing("aucun", "none") } else { m.media.join(", ") },
        m.off_site.map_or_else(|| w.missing("inconnu (site non déclaré)", "unknown (site not declared)"), yes_no),
        yes_no(m.three_two_one),
        immutability,
    ]
}

fn scenarios(plan: &Plan, evidence: &Evidence, w: &Words) -> Section {
    let p = plan_arg(plan);
    let mut s = Section::new(w.t("6. Scénarios de sinistre", "6. Disaster scenarios"));
    let copies: Vec<&str> = plan.repositories.values().filter(|r| r.copy_of.is_some()).map(|r| r.name.as_str()).collect();
    s = s.with(para(w.t("6.1 Perte du site principal", "6.1 Loss of the primary site")));
    if copies.is_empty() {
        s = s.with(Block::Notice {
            level: Level::Critical,
            text: w.missing(
                "Aucune copie n'est déclarée (copy_of) : si le site du dépôt principal est perdu, aucune sauvegarde ne reste. Déclarer un dépôt sur un autre site et lancer `reprise copy`.",
                "No copy is declared (copy_of): if the primary repository's site is lost, no backup is left. Declare a repository at another site and run `reprise copy`.",
            ),
        });
    } else {
        let mut text = w.t("Restaurer depuis la copie hors site, avec les procédures de la section 7 et l'option --repo :", "Restore from the off-site copy, with the procedures of section 7 and --repo:").to_owned();
        for copy in &copies {
            let _ = write!(text, "\nreprise --plan {p} --repo {copy} snapshots");
        }
        s = s.with(para(text));
    }
    s = s.with(para(w.t("6.2 Cyberattaque (rançongiciel)", "6.2 Cyberattack (ransomware)"))).with(Block::List {
        items: vec![
            w.t("Isoler les hôtes compromis ; les hôtes de production n'ont qu'une clé d'écriture : ils ne peuvent ni lire ni effacer les sauvegardes.", "Isolate the compromised hosts; production hosts hold a write-only key: they can neither read nor delete backups.").to_owned(),
            format!("{} reprise --plan {p} ledger verify", w.t("Vérifier le registre de preuves :", "Verify the evidence ledger:")),
            format!("{} reprise --plan {p} snapshots", w.t("Choisir le dernier instantané antérieur à l'infection :", "Choose the last snapshot before the infection:")),
            format!("{} reprise --plan {p} check --read-data", w.t("Vérifier les données avant de restaurer :", "Verify the data before restoring:")),
            w.t("Restaurer chaque composant à un point antérieur à l'infection (section 7, --at pour PostgreSQL).", "Restore each component at a point before the infection (section 7, --at for PostgreSQL).").to_owned(),
            w.t("Notifier la CNIL sous 72 h si des données personnelles sont touchées.", "Notify the data protection authority within 72 h if personal data is affected.").to_owned(),
        ],
    });
    let immutable: Vec<String> = plan
        .components
        .values()
        .filter(|c| c.objectives.immutable)
        .map(|c| {
            let state = evidence.component(&c.name).and_then(super::ComponentEvidence::measured).and_then(|m| m.immutability_in_force);
            format!("{} : {}", c.name, match state {
                Some(true) => w.t("verrou de stockage en vigueur", "storage lock in force"),
                Some(false) => w.t("verrou de stockage PAS en vigueur", "storage lock NOT in force"),
                None => w.t("verrou non mesuré", "lock not measured"),
            })
        })
        .collect();
    if !immutable.is_empty() {
        s = s.with(para(format!("{} {}", w.t("Immuabilité :", "Immutability:"), immutable.join(" ; "))));
    }
    s = s.with(para(w.t("6.3 Erreur humaine (suppression accidentelle)", "6.3 Human error (accidental deletion)")));
    let mut items = Vec::new();
    for c in plan.components.values() {
        match &c.kind {
            ComponentKind::Postgres(pg) if pg.mode == PostgresMode::Physical => items.push(format!(
                "{} {} : reprise --plan {p} recover-rows {} --table TABLE --at {}",
                w.t("Lignes supprimées ou modifiées dans", "Rows deleted or changed in"),
                c.name,
                c.name,
                w.t("INSTANT_AVANT_L_ERREUR (le script est écrit pour relecture, puis --apply)", "TIME_BEFORE_THE_MISTAKE (the script is written for review, then --apply)")
            )),
            ComponentKind::Files => {
                if let Some(path) = c.paths.first() {
                    items.push(format!(
                        "{} {} : reprise --plan {p} restore {}:{} --to /var/tmp/reprise-restore/{}",
                        w.t("Fichiers supprimés de", "Files deleted from"),
                        c.name,
                        c.name,
                        path.display(),
                        c.name
                    ));
                }
            }
            ComponentKind::Postgres(_) => {}
        }
    }
    if items.is_empty() {
        items.push(w.missing("Aucun composant ne permet une restauration partielle.", "No component allows a partial restore."));
    }
    s = s.with(Block::List { items });
    s = s.with(para(w.t("6.4 Compromission d'identifiants", "6.4 Compromised credentials"))).with(Block::List {
        items: vec![
            format!("{} reprise --plan {p} key list", w.t("Lister les clés :", "List the keys:")),
            format!("{} reprise --plan {p} key revoke KEY_ID --reason \"...\"", w.t("Révoquer la clé d'écriture compromise (ce qu'elle a écrit avant reste fiable) :", "Revoke the compromised write key (what it wrote before stays trusted):")),
            format!("{} reprise --plan {p} ledger verify", w.t("Vérifier qu'aucune écriture falsifiée n'a été faite :", "Verify that no forged write was made:")),
        ],
    });
    s
}

fn procedures(plan: &Plan, evidence: &Evidence, w: &Words) -> Section {
    let p = plan_arg(plan);
    let mut s = Section::new(w.t("7. Procédures de restauration", "7. Restoration procedures")).with(para(w.t(
        "Les commandes ci-dessous restaurent les composants de ce plan ; elles s'exécutent depuis un hôte qui détient la phrase de passe (ou la clé de récupération), jamais depuis un hôte de production qui n'a qu'une clé d'écriture.",
        "The commands below restore this plan's components; they run on a host holding the passphrase (or the recovery key), never on a production host that only holds a write key.",
    )));
    for (i, c) in plan.components.values().enumerate() {
        let m = evidence.component(&c.name).and_then(super::ComponentEvidence::measured);
        let dir = format!("/var/tmp/reprise-restore/{}", c.name);
        let mut steps = Vec::new();
        match &c.kind {
            ComponentKind::Postgres(pg) if pg.mode == PostgresMode::Physical => {
                let window = match m.and_then(|m| m.oldest_restorable.zip(m.newest_restorable)) {
                    Some((a, b)) => format!("{} {} {} {}", w.t("de", "from"), when(a), w.t("à", "to"), when(b)),
                    None => w.missing("aucun point restaurable mesuré", "no restorable point measured"),
                };
                steps.push(format!("{} {window}.", w.t("Points restaurables :", "Restorable points:")));
                steps.push(format!("{} reprise --plan {p} status {}", w.t("1. État et fenêtre PITR :", "1. State and PITR window:"), c.name));
                steps.push(format!(
                    "{} reprise --plan {p} restore {} --at latest --to {dir} --start",
                    w.t("2. Restaurer au dernier point (ou --at 'AAAA-MM-JJTHH:MM:SSZ' avant un incident), démarrer, promouvoir et mesurer :", "2. Restore to the latest point (or --at 'YYYY-MM-DDTHH:MM:SSZ' before an incident), start, promote and measure:"),
                    c.name
                ));
                steps.push(w.t("3. Vérifier le nombre de patients et les derniers documents, puis faire pointer l'application sur le serveur restauré.", "3. Check the patient count and the newest documents, then point the application at the restored server.").to_owned());
            }
            ComponentKind::Postgres(_) => {
                steps.push(format!("{} reprise --plan {p} restore {} --at latest --to {dir} --into 'host=... dbname=postgres'", w.t("1. Recharger le dernier dump dans un serveur :", "1. Load the newest dump into a server:"), c.name));
            }
            ComponentKind::Files => {
                steps.push(format!("{} reprise --plan {p} snapshots --component {}", w.t("1. Choisir l'instantané :", "1. Choose the snapshot:"), c.name));
                steps.push(format!("{} reprise --plan {p} restore {} --to {dir}", w.t("2. Restaurer le plus récent (chaque fichier est vérifié) :", "2. Restore the newest (every file is verified):"), c.name));
                steps.push(format!(
                    "{} {}",
                    w.t("3. Remettre les fichiers en place :", "3. Put the files back:"),
                    c.paths.iter().map(|x| x.display().to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        s = s.with(para(format!("7.{} {} ({}) — RTO {}", i + 1, c.name, kind(c, w.lang), w.dur(c.objectives.rto, "non fixé", "not set")))).with(Block::List { items: steps });
    }
    s
}

#[cfg(test)]
#[allow(clippy::duration_suboptimal_units, reason = "lengths in seconds read best next to the text they become")]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_as_a_person_says_them() {
        assert_eq!(human(Duration::from_secs(3600)), "1 h");
        assert_eq!(human(Duration::from_secs(5400)), "1 h 30 min");
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human_in(Duration::from_secs(7 * 86_400), Lang::Fr), "7 j");
        assert_eq!(human(Duration::from_millis(300)), "0.3 s");
    }
}
