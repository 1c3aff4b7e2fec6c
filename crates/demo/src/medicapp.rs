//! A MedicApp-like database: patients, procedure cases, signed documents,
//! prescriptions, appointments and an audit log, with varied text (notes,
//! addresses, free-text reports) so that it compresses like real data —
//! not like pgbench's blank filler columns, which flatter every tool.

/// The schema.
pub const SCHEMA: &str = r"
CREATE TABLE patients (
    id bigint PRIMARY KEY,
    ins_number text NOT NULL,
    last_name text NOT NULL,
    first_name text NOT NULL,
    birth_date date NOT NULL,
    address text NOT NULL,
    guardian text,
    notes text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE procedure_cases (
    id bigint PRIMARY KEY,
    patient_id bigint NOT NULL REFERENCES patients(id),
    surgeon text NOT NULL,
    procedure_code text NOT NULL,
    scheduled_for timestamptz NOT NULL,
    status text NOT NULL,
    report text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON procedure_cases (patient_id);
CREATE TABLE documents (
    id bigint PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES procedure_cases(id) ON DELETE CASCADE,
    kind text NOT NULL,
    storage_path text NOT NULL,
    sha256 text NOT NULL,
    signed_at timestamptz
);
CREATE INDEX ON documents (case_id);
CREATE TABLE prescriptions (
    id bigint PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES procedure_cases(id) ON DELETE CASCADE,
    drug text NOT NULL,
    dosage text NOT NULL,
    instructions text
);
CREATE INDEX ON prescriptions (case_id);
CREATE TABLE appointments (
    id bigserial PRIMARY KEY,
    patient_id bigint NOT NULL REFERENCES patients(id),
    at timestamptz NOT NULL,
    reason text NOT NULL
);
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    detail jsonb
);
";

/// Vocabulary the generated text is drawn from (hashed picks, so the text
/// varies row by row but stays deterministic).
const WORDS_SQL: &str = "ARRAY['patient','intervention','chirurgie','pediatrique','consentement','eclaire','anesthesie','risque','parent','tuteur',\
'signature','hopital','service','posologie','matin','soir','jours','compte','rendu','operatoire','suites','simples','controle','semaines',\
'douleur','fievre','antibiotique','pansement','cicatrice','bilan','radio','echographie','allergie','poids','taille','tension','sortie','rappel']";

fn text_expr(seed: &str, words: u32) -> String {
    // md5-derived indexes: varied, deterministic, cheap.
    format!("(SELECT string_agg(({WORDS_SQL})[1 + (('x' || substr(md5({seed} || '-' || w), 1, 8))::bit(32)::int & 2147483647) % 38], ' ') FROM generate_series(1, {words}) w)")
}

/// SQL that fills the schema with `scale` × 1000 patients and the rest in
/// proportion (scale 1 ≈ 25 MB of tables and indexes).
#[must_use]
pub fn data(scale: u32) -> String {
    let p = scale * 1000;
    let cases = p * 3;
    format!(
        "INSERT INTO patients SELECT g, lpad((1000000000000 + g::bigint * 7919 % 999999999999)::text, 13, '0'), \
             initcap({last}), initcap({first}), date '2008-01-01' + (g * 37 % 6000), \
             (g % 200 + 1) || ' rue ' || initcap({street}) || ', ' || (75000 + g % 95 * 100) || ' ' || initcap({city}), \
             CASE WHEN g % 3 = 0 THEN initcap({first2}) END, {notes}, now() - (g % 900) * interval '1 day' \
         FROM generate_series(1, {p}) g;
         INSERT INTO procedure_cases SELECT g, 1 + g % {p}, 'Dr ' || initcap({surgeon}), 'CCAM-' || lpad((g * 13 % 9999)::text, 4, '0'), \
             now() - (g % 700) * interval '1 day' + (g % 24) * interval '1 hour', \
             (ARRAY['scheduled','done','cancelled','follow-up'])[1 + g % 4], {report}, now() \
         FROM generate_series(1, {cases}) g;
         INSERT INTO documents SELECT g, 1 + g % {cases}, (ARRAY['consentement','ordonnance','compte-rendu'])[1 + g % 3], \
             'legal_documents_signed/' || (g % 997) || '/case-' || g || '-signed.pdf', md5(g::text) || md5((g * 7)::text), now() - (g % 500) * interval '1 hour' \
         FROM generate_series(1, {cases}) g;
         INSERT INTO prescriptions SELECT g, 1 + g % {cases}, initcap({drug}), (1 + g % 4) || ' x ' || (g % 3 + 1) * 250 || ' mg', {instr} \
         FROM generate_series(1, {p2}) g;
         INSERT INTO appointments (patient_id, at, reason) SELECT 1 + g % {p}, now() + (g % 90) * interval '1 day', {reason} \
         FROM generate_series(1, {p2}) g;
         INSERT INTO audit_log (at, actor, action, detail) SELECT now() - (g % 1000) * interval '1 minute', 'user' || (g % 50), \
             (ARRAY['read','update','sign','export','login'])[1 + g % 5], jsonb_build_object('case', g % {cases}, 'ip', '10.0.' || (g % 250) || '.' || (g % 199)) \
         FROM generate_series(1, {audit}) g;
         ANALYZE;",
        last = text_expr("g::text || 'l'", 1),
        first = text_expr("g::text || 'f'", 1),
        first2 = text_expr("g::text || 'g'", 1),
        street = text_expr("g::text || 's'", 2),
        city = text_expr("g::text || 'c'", 1),
        notes = text_expr("g::text || 'n'", 12),
        surgeon = text_expr("(g % 40)::text", 1),
        report = text_expr("g::text || 'r'", 40),
        drug = text_expr("g::text || 'd'", 1),
        instr = text_expr("g::text || 'i'", 10),
        reason = text_expr("g::text || 'a'", 5),
        p2 = p * 2,
        audit = p * 10,
    )
}

/// One write-load transaction (`i` makes it differ): what a day of use
/// does — new appointments, audit entries, an updated case.
#[must_use]
pub fn load_transaction(i: u64, patients: u64) -> String {
    let p = 1 + i * 7919 % patients.max(1);
    format!(
        "BEGIN;
         INSERT INTO appointments (patient_id, at, reason) VALUES ({p}, now() + interval '3 days', 'controle post-operatoire {i}');
         INSERT INTO audit_log (actor, action, detail) VALUES ('user{}', 'update', jsonb_build_object('case', {}, 'n', {i}));
         UPDATE procedure_cases SET status = 'follow-up', updated_at = now() WHERE id = {};
         COMMIT;",
        i % 50,
        i % 1000 + 1,
        1 + i * 104_729 % (patients * 3).max(1)
    )
}

/// The legitimate work done after the demo's accident.
#[derive(Debug, Clone)]
pub struct LaterWork {
    pub booked_case: i64,
    pub completed_case: i64,
    pub withdrawn_prescription: i64,
}

/// Identifiers never used before the accident (the application's
/// sequence, in effect): a deleted key is not reused.
pub fn next_ids(db: &mut postgres::Client) -> Result<(i64, i64), postgres::Error> {
    let row = db.query_one("SELECT (SELECT max(id) + 1 FROM procedure_cases), (SELECT max(id) + 1 FROM documents)", &[])?;
    Ok((row.get(0), row.get(1)))
}

/// Where the consent document of the case booked after the accident is
/// stored, relative to the documents' root (as `documents.storage_path`).
#[must_use]
pub fn later_consent_path(booked_case: i64) -> String {
    format!("legal_documents_signed/later/case-{booked_case}-signed.pdf")
}

/// After the accident, the clinic keeps working: a new case is booked with
/// its consent document (stored at `later_consent_path`, its SHA-256 hex
/// `consent_sha256`), another surgeon's case is completed, and a
/// prescription of another surgeon's case is withdrawn.
pub fn later_work(db: &mut postgres::Client, deleted_surgeon: &str, (booked_case, document): (i64, i64), consent_sha256: &str) -> Result<LaterWork, postgres::Error> {
    let completed_case: i64 = db.query_one("SELECT min(id) FROM procedure_cases WHERE surgeon <> $1", &[&deleted_surgeon])?.get(0);
    let withdrawn_prescription: i64 = db
        .query_one("SELECT min(p.id) FROM prescriptions p JOIN procedure_cases c ON c.id = p.case_id WHERE c.surgeon <> $1", &[&deleted_surgeon])?
        .get(0);
    let mut tx = db.transaction()?;
    tx.execute(
        "INSERT INTO procedure_cases (id, patient_id, surgeon, procedure_code, scheduled_for, status, report) \
         VALUES ($1, 1, 'Dr Later', 'CCAM-0001', now() + interval '1 day', 'scheduled', 'booked after the mistake')",
        &[&booked_case],
    )?;
    tx.execute(
        "INSERT INTO documents (id, case_id, kind, storage_path, sha256) VALUES ($1, $2, 'consentement', $3, $4)",
        &[&document, &booked_case, &later_consent_path(booked_case), &consent_sha256],
    )?;
    tx.execute("UPDATE procedure_cases SET status = 'done', report = 'completed after the mistake' WHERE id = $1", &[&completed_case])?;
    tx.execute("DELETE FROM prescriptions WHERE id = $1", &[&withdrawn_prescription])?;
    tx.commit()?;
    Ok(LaterWork { booked_case, completed_case, withdrawn_prescription })
}

/// Which of the later changes are still there (each named).
pub fn later_work_kept(db: &mut postgres::Client, w: &LaterWork) -> Result<Vec<String>, postgres::Error> {
    let mut kept = Vec::new();
    let booked: i64 = db.query_one("SELECT count(*) FROM procedure_cases c JOIN documents d ON d.case_id = c.id WHERE c.id = $1 AND c.report = 'booked after the mistake'", &[&w.booked_case])?.get(0);
    if booked == 1 {
        kept.push(format!("case {} booked", w.booked_case));
    }
    let completed: i64 = db.query_one("SELECT count(*) FROM procedure_cases WHERE id = $1 AND status = 'done' AND report = 'completed after the mistake'", &[&w.completed_case])?.get(0);
    if completed == 1 {
        kept.push(format!("case {} completed", w.completed_case));
    }
    let withdrawn: i64 = db.query_one("SELECT count(*) FROM prescriptions WHERE id = $1", &[&w.withdrawn_prescription])?.get(0);
    if withdrawn == 0 {
        kept.push(format!("prescription {} withdrawn", w.withdrawn_prescription));
    }
    Ok(kept)
}
