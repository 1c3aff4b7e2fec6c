//! `reprise demo`: the main job, end to end, on data it makes itself.
//!
//! A throwaway PostgreSQL with a MedicApp-like database archives its WAL
//! into a fresh encrypted repository (through a write-only credential, as a
//! production host would); a base backup is taken; a write load runs; an
//! accidental `DELETE` happens and the clinic keeps working; the rows the
//! accident destroyed are repaired with `recover-rows`, the later work kept;
//! the whole database is restored at the moment before the mistake and
//! checked with `pg_amcheck`; a signed-documents store is backed up,
//! restored and compared byte for byte. Every step is measured; nothing is
//! left running.
//!
//! The demo runs the operations every interface runs (`reprise_ops`), on
//! the plan it writes: a backup, a restore or a check here is the one
//! `reprise backup` runs, and records the same entry in the evidence
//! ledger. Only the throwaway server and the data are the demo's own
//! (`reprise_postgres::cluster`, `medicapp`, `datasets`). It ends by
//! verifying the ledger those operations wrote.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reprise_engine::check::ReadData;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::KdfParams;
use reprise_ops::backup::{BackupRequest, backup};
use reprise_ops::drill::DrillRequest;
use reprise_ops::postgres::{FetchCommand, RecoverRowsRequest, recover_rows};
use reprise_ops::restore::{RestoreReport, RestoreRequest, restore};
use reprise_ops::{CancelToken, Environment, OpsError, Settings, Silent, Verdict, Workspace};
use reprise_postgres::cluster::{self, Cluster, OnDrop, PgBin};
use reprise_postgres::{rows, wal};

use crate::{datasets, medicapp};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An operation failed: its category decides the exit code.
    #[error("{0}")]
    Ops(#[from] OpsError),
    #[error("{0}")]
    Postgres(#[from] reprise_postgres::PgError),
    #[error("demo data: {0}")]
    Io(#[from] std::io::Error),
    #[error("verification failed: {0}")]
    Verification(String),
    #[error("interrupted")]
    Interrupted,
}

fn sql(e: &postgres::Error) -> DemoError {
    DemoError::Postgres(reprise_postgres::PgError::Sql(e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())))
}

/// One measured step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoStep {
    pub name: String,
    pub detail: String,
    pub millis: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DemoReport {
    pub workdir: PathBuf,
    pub steps: Vec<DemoStep>,
    pub database_bytes: u64,
    pub base_backup_ms: u64,
    pub base_backup_stored_bytes: u64,
    pub load_transactions: u64,
    /// Data at risk measured at the end of the write load (seconds).
    pub achieved_rpo_seconds: Option<f64>,
    /// Rows the accident destroyed, repaired by `recover-rows`.
    pub rows_recovered: u64,
    /// Legitimate changes made after the accident, checked still there.
    pub later_changes_kept: u64,
    pub recover_rows_ms: u64,
    /// Restore at the chosen time, started and promoted: the measured RTO.
    pub pitr_rto_ms: u64,
    pub documents_bytes: u64,
    pub documents_restore_ms: u64,
    pub files_verified: u64,
    /// Entries the operations above recorded in the evidence ledger, and
    /// whether `ledger verify` found every root and signature right.
    pub ledger_entries: u64,
    pub ledger_signatures: u64,
    pub ledger_verified: bool,
    /// The drill's stored record (`reprise drill show ID`), its RTO and
    /// how many validations it ran (all passed, or the demo failed).
    pub drill_id: Option<String>,
    pub drill_rto_ms: u64,
    pub drill_checks: u64,
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub documents: usize,
    /// MedicApp scale (1 ≈ 1000 patients, 3000 cases).
    pub scale: u32,
    pub load_seconds: u64,
    /// The reprise executable (PostgreSQL calls it as archive_command).
    pub exe: PathBuf,
}

struct Steps<'a> {
    report: DemoReport,
    on_step: &'a mut dyn FnMut(&DemoStep),
}

impl Steps<'_> {
    fn done(&mut self, name: &str, started: Instant, detail: String) -> u64 {
        let s = DemoStep { name: name.to_owned(), detail, millis: started.elapsed().as_millis() as u64 };
        (self.on_step)(&s);
        let ms = s.millis;
        self.report.steps.push(s);
        ms
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// Waits until PostgreSQL has archived every WAL file up to the current one.
fn switch_and_wait_archived(db: &mut postgres::Client, timeout: Duration) -> Result<(), DemoError> {
    let row = db.query_one("SELECT pg_walfile_name(pg_switch_wal())", &[]).map_err(|e| sql(&e))?;
    let wanted: String = row.get(0);
    let deadline = Instant::now() + timeout;
    loop {
        let last: Option<String> = db.query_one("SELECT last_archived_wal FROM pg_stat_archiver", &[]).map_err(|e| sql(&e))?.get(0);
        if last.as_deref().is_some_and(|l| l >= wanted.as_str()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Verification(format!("{wanted} was not archived within {}s", timeout.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Keeps the first `n` documents of the database, writes each as a signed
/// PDF where its `storage_path` says (under `root`) and records its
/// SHA-256. Returns how many and their bytes.
fn sign_documents(db: &mut postgres::Client, root: &Path, maker: &mut datasets::SignedDocuments, n: usize) -> Result<(usize, u64), DemoError> {
    let keep = i64::try_from(n).unwrap_or(i64::MAX);
    db.execute("DELETE FROM documents WHERE id > $1", &[&keep]).map_err(|e| sql(&e))?;
    let rows = db.query("SELECT id, kind, storage_path FROM documents ORDER BY id", &[]).map_err(|e| sql(&e))?;
    let (mut ids, mut hashes, mut bytes) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()), 0u64);
    for row in rows {
        let (id, kind, path): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        let k = datasets::SignedDocuments::KINDS.iter().position(|x| *x == kind).unwrap_or(0);
        let body = maker.document(k);
        let file = root.join(&path);
        std::fs::create_dir_all(file.parent().unwrap_or(root))?;
        std::fs::write(&file, &body)?;
        bytes += body.len() as u64;
        ids.push(id);
        hashes.push(sha256_hex(&body));
    }
    db.execute("UPDATE documents d SET sha256 = v.h FROM unnest($1::bigint[], $2::text[]) AS v(id, h) WHERE d.id = v.id", &[&ids, &hashes]).map_err(|e| sql(&e))?;
    Ok((ids.len(), bytes))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn count(db: &mut postgres::Client, query: &str) -> Result<i64, DemoError> {
    Ok(db.query_one(query, &[]).map_err(|e| sql(&e))?.get(0))
}

/// Runs the whole demo in `workdir` (empty or missing).
pub fn run_demo(workdir: &Path, opts: &DemoOptions, cancel: &CancelToken, on_step: &mut dyn FnMut(&DemoStep)) -> Result<DemoReport, DemoError> {
    let mut steps = Steps { report: DemoReport { workdir: workdir.to_owned(), ..DemoReport::default() }, on_step };
    std::fs::create_dir_all(workdir)?;
    // The server account must be able to reach the repository and the cluster.
    cluster::hand_over(workdir, 0o755)?;
    let check_cancel = || if cancel.is_cancelled() { Err(DemoError::Interrupted) } else { Ok(()) };

    // 1. A throwaway PostgreSQL with the MedicApp database.
    let t = Instant::now();
    let bin = PgBin::find(None)?;
    let mut live = Cluster::initdb(bin.clone(), &workdir.join("medicapp-postgres"), OnDrop::StopAndRemove)?;
    let repo_dir = workdir.join("repository");
    let credential = workdir.join("archive.credential");
    let archive_command = format!(
        "{} --repo {} --key-file {} wal-push medicapp-db %p",
        cluster::shell_quote(&opts.exe.display().to_string()),
        cluster::shell_quote(&repo_dir.display().to_string()),
        cluster::shell_quote(&credential.display().to_string())
    );
    live.start(&[
        ("wal_level".into(), "replica".into()),
        ("archive_mode".into(), "on".into()),
        ("archive_command".into(), archive_command),
        ("archive_timeout".into(), "5s".into()),
        ("max_wal_size".into(), "1GB".into()),
    ])?;
    live.wait_ready(Duration::from_mins(1))?;
    let mut admin = live.connect("postgres")?;
    admin.batch_execute("CREATE DATABASE medicapp").map_err(|e| sql(&e))?;
    let mut db = live.connect("medicapp")?;
    db.batch_execute(medicapp::SCHEMA).map_err(|e| sql(&e))?;
    db.batch_execute(&medicapp::data(opts.scale)).map_err(|e| sql(&e))?;
    let db_bytes: i64 = db.query_one("SELECT pg_database_size('medicapp')", &[]).map_err(|e| sql(&e))?.get(0);
    steps.report.database_bytes = db_bytes as u64;
    let cases = count(&mut db, "SELECT count(*) FROM procedure_cases")?;
    // The signed documents the database points to, written where
    // `documents.storage_path` says with their SHA-256 recorded: what the
    // drill checks is that the restored database and the restored
    // documents agree.
    let docs_root = workdir.join("medicapp");
    let documents = docs_root.join("legal_documents_signed");
    let mut maker = datasets::SignedDocuments::new(1);
    let (written, doc_bytes) = sign_documents(&mut db, &docs_root, &mut maker, opts.documents)?;
    steps.report.documents_bytes = doc_bytes;
    steps.done(
        "postgres",
        t,
        format!(
            "throwaway PostgreSQL with a MedicApp database: {} patients, {cases} procedure cases, {}; the {written} signed PDFs it points to ({}) written with their SHA-256",
            opts.scale * 1000,
            mib(db_bytes as u64),
            mib(doc_bytes)
        ),
    );
    check_cancel()?;

    // 2. Plan, repository, write credential for the database host.
    let t = Instant::now();
    let pass: String = blake3::hash(format!("{}{:?}", workdir.display(), std::time::SystemTime::now()).as_bytes()).to_hex()[..32].to_owned();
    std::fs::write(workdir.join("passphrase"), format!("{pass}\n"))?;
    std::fs::set_permissions(workdir.join("passphrase"), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let plan_file = workdir.join("reprise.toml");
    std::fs::write(
        &plan_file,
        format!(
            "# Written by `reprise demo`.\n[plan]\nname = \"MedicApp (demo)\"\n\n[settings]\ncache_dir = \"{}\"\n\n[repositories.primary]\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [components.medicapp-db]\ntype = \"postgres\"\nconnection = \"{}\"\ndata_directory = \"{}\"\n\n\
             [components.medicapp-db.objectives]\nrpo = \"1h\"\nrto = \"2h\"\npitr = \"7d\"\nretention = {{ daily = 30, weekly = 12, monthly = 12, yearly = 7 }}\n\n\
             [components.signed-documents]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.signed-documents.objectives]\nrpo = \"15m\"\nrto = \"4h\"\nretain_for = \"20y\"\n\n\
             [contacts.plan-owner]\nname = \"Dr Claire Martin (demo)\"\nrole = \"Responsable PRA/PCA\"\nemail = \"pra@medicapp.example\"\nreviewed = \"{}\"\n\n\
             [review]\nowner = \"plan-owner\"\nversion = \"1.0 (demo)\"\n\n\
             [tests.database]\ncomponents = [\"medicapp-db\"]\nevery = \"1mo\"\nresponsible = \"plan-owner\"\n\n\
             [tests.documents]\ncomponents = [\"signed-documents\"]\nevery = \"3mo\"\nresponsible = \"plan-owner\"\n\n\
             [drills.monthly]\ncomponents = [\"medicapp-db\", \"signed-documents\"]\ntarget = \"latest\"\nscratch = \"{}\"\nschedule = \"0 3 1 * *\"\ntimezone = \"Europe/Paris\"\nowner = \"Dr Claire Martin (demo)\"\n\n\
             [[drills.monthly.sql]]\nlabel = \"Nombre de patients correct\"\ndatabase = \"medicapp\"\nquery = \"SELECT count(*) FROM patients\"\nequals = {}\n\n\
             [[drills.monthly.sql]]\nlabel = \"Dossiers opératoires présents\"\ndatabase = \"medicapp\"\nquery = \"SELECT count(*) FROM procedure_cases\"\nat_least = {cases}\n\n\
             [[drills.monthly.documents]]\nlabel = \"Documents signés référencés présents et intègres\"\ncomponent = \"signed-documents\"\ndatabase = \"medicapp\"\n\
             query = \"SELECT storage_path, sha256 FROM documents ORDER BY signed_at DESC, id\"\nroot = \"{}\"\nnewest = 10\n",
            workdir.join("cache").display(),
            repo_dir.display(),
            workdir.join("passphrase").display(),
            live.conn_string("medicapp"),
            live.data_dir.display(),
            documents.display(),
            jiff::Zoned::now().date(),
            workdir.join("scratch").display(),
            opts.scale * 1000,
            docs_root.display()
        ),
    )?;
    // Every step below runs on this plan, as `reprise --plan` would.
    let plan = reprise_plan::Plan::load(&plan_file).map_err(|e| DemoError::Verification(format!("the plan the demo wrote does not load: {e}")))?;
    // Its own passphrase file wins over a REPRISE_PASSWORD the caller may have set.
    let settings = Settings { password_file: Some(workdir.join("passphrase")), ..Settings::default() };
    let ws = Workspace::new(Some(plan), settings, Environment::from_process());
    let fetch: Arc<dyn FetchCommand> = Arc::new(DemoFetch { exe: opts.exe.clone(), plan: plan_file.clone() });
    let created = reprise_ops::keys::init(&ws, KdfParams::default(), ChunkerParams::default(), reprise_engine::format::config::DEFAULT_PACK_SIZE)?;
    // A write credential of its own (its own domain and signing key), whose
    // public record the administrator endorses.
    reprise_ops::keys::write_credential(&ws, &credential, "demo database host", None)?;
    cluster::hand_over(&repo_dir, 0o755)?;
    for entry in walk_dirs(&repo_dir) {
        cluster::hand_over(&entry, 0o755)?;
    }
    cluster::hand_over(&credential, 0o600)?;
    steps.done("repository", t, format!("encrypted repository {} and plan {}; the database host archives WAL with a write-only credential", &created.id[..8], plan_file.display()));

    // 3. Base backup.
    let t = Instant::now();
    let base = backup(&ws, BackupRequest { component: Some("medicapp-db".into()), ..BackupRequest::default() }, &Silent, cancel)?.outcome;
    steps.report.base_backup_stored_bytes = base.header.summary.stored_bytes;
    steps.report.base_backup_ms = steps.done(
        "base backup",
        t,
        format!("snapshot {}: {} read, {} stored (deduplicated, compressed, encrypted)", base.id.short(), mib(base.header.summary.bytes), mib(base.header.summary.stored_bytes)),
    );
    check_cancel()?;

    // 4. A write load while WAL is archived.
    let t = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let loaders: Vec<_> = (0..2)
        .map(|w| {
            let conn = live.conn_string("medicapp");
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            let patients = u64::from(opts.scale) * 1000;
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = reprise_postgres::conn::connect(&conn, None).map_err(|e| e.to_string())?;
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    c.batch_execute(&medicapp::load_transaction(i, patients)).map_err(|e| e.to_string())?;
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 2;
                }
                Ok(())
            })
        })
        .collect();
    let load_end = Instant::now() + Duration::from_secs(opts.load_seconds);
    while Instant::now() < load_end && !cancel.is_cancelled() {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The RPO as `reprise status` judges it, not a figure of the demo's own.
    let achieved_rpo = reprise_ops::status::status(&ws, &["medicapp-db".to_owned()])?.first().and_then(|s| s.rpo_seconds);
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().expect("load thread").map_err(DemoError::Verification)?;
    }
    check_cancel()?;
    let tx = done.load(Ordering::Relaxed);
    steps.report.load_transactions = tx;
    steps.report.achieved_rpo_seconds = achieved_rpo;
    steps.done(
        "write load",
        t,
        format!(
            "{tx} transactions ({:.0}/s) while PostgreSQL archived WAL through `reprise wal-push`; achieved RPO {} (objective 1h)",
            tx as f64 / t.elapsed().as_secs_f64(),
            achieved_rpo.map_or_else(|| "unknown".into(), |s| format!("{s:.1}s"))
        ),
    );

    // 5. The accident — and the clinic keeps working after it.
    let t = Instant::now();
    let surgeon: String = db.query_one("SELECT surgeon FROM procedure_cases GROUP BY surgeon ORDER BY count(*) DESC LIMIT 1", &[]).map_err(|e| sql(&e))?.get(0);
    let totals = |db: &mut postgres::Client| -> Result<[i64; 3], DemoError> {
        Ok([count(db, "SELECT count(*) FROM procedure_cases")?, count(db, "SELECT count(*) FROM documents")?, count(db, "SELECT count(*) FROM prescriptions")?])
    };
    let before = totals(&mut db)?;
    let next_ids = medicapp::next_ids(&mut db).map_err(|e| sql(&e))?;
    db.batch_execute("INSERT INTO audit_log (actor, action) VALUES ('demo', 'checkpoint before the mistake')").map_err(|e| sql(&e))?;
    std::thread::sleep(Duration::from_millis(1100));
    let at = jiff::Timestamp::now();
    std::thread::sleep(Duration::from_millis(1100));
    let deleted = db.execute("DELETE FROM procedure_cases WHERE surgeon = $1", &[&surgeon]).map_err(|e| sql(&e))?;
    let after = totals(&mut db)?;
    db.batch_execute(&medicapp::load_transaction(999_999, u64::from(opts.scale) * 1000)).map_err(|e| sql(&e))?;
    // Legitimate work after the mistake, which recovery must keep: a case
    // booked, another surgeon's case completed, a prescription withdrawn.
    let consent = maker.document(0);
    let consent_file = docs_root.join(medicapp::later_consent_path(next_ids.0));
    std::fs::create_dir_all(consent_file.parent().unwrap_or(&docs_root))?;
    std::fs::write(&consent_file, &consent)?;
    let later = medicapp::later_work(&mut db, &surgeon, next_ids, &sha256_hex(&consent)).map_err(|e| sql(&e))?;
    switch_and_wait_archived(&mut db, Duration::from_mins(2))?;
    steps.done(
        "accident",
        t,
        format!(
            "DELETE FROM procedure_cases WHERE surgeon = '{surgeon}' at {}: {deleted} cases and, by cascade, {} signed documents and {} prescriptions gone; then the clinic kept working: case {} booked, case {} completed, prescription {} withdrawn",
            at.strftime("%H:%M:%S"),
            before[1] - after[1],
            before[2] - after[2],
            later.booked_case,
            later.completed_case,
            later.withdrawn_prescription
        ),
    );
    check_cancel()?;

    // 6. Repair what the accident did, and only that.
    let t = Instant::now();
    let r = recover_rows(
        &ws,
        &RecoverRowsRequest {
            component: "medicapp-db".into(),
            // Children first on purpose: recover-rows orders by foreign keys.
            tables: vec!["documents".into(), "prescriptions".into(), "procedure_cases".into()],
            at: at.to_string(),
            until: None,
            predicate: None,
            conflicts: rows::ConflictChoice::Keep,
            database: Some("medicapp".into()),
            apply: true,
            script: Some(workdir.join("recover-procedure_cases.sql")),
        },
        &fetch,
        cancel,
    )?;
    // Everything the accident removed is back, and the later work is kept.
    let now = totals(&mut db)?;
    let expected = [before[0] + 1, before[1] + 1, before[2] - 1];
    if now != expected {
        return Err(DemoError::Verification(format!("after recover-rows: cases, documents, prescriptions {now:?}, expected {expected:?}")));
    }
    let surgeon_cases = db.query_one("SELECT count(*) FROM procedure_cases WHERE surgeon = $1", &[&surgeon]).map_err(|e| sql(&e))?.get::<_, i64>(0);
    let kept = medicapp::later_work_kept(&mut db, &later).map_err(|e| sql(&e))?;
    if surgeon_cases != deleted as i64 || kept.len() != 3 || r.conflicts() != 0 {
        return Err(DemoError::Verification(format!(
            "after recover-rows: {surgeon_cases} of {deleted} cases of {surgeon} back, later work kept: {kept:?}, {} conflict(s)",
            r.conflicts()
        )));
    }
    let table = |name: &str| r.tables.iter().find(|t| t.table == format!("public.{name}")).map_or(0, |t| t.repaired);
    let untouched: u64 = r.tables.iter().map(|t| t.untouched).sum();
    steps.report.rows_recovered = r.repaired();
    steps.report.later_changes_kept = kept.len() as u64;
    steps.report.recover_rows_ms = steps.done(
        "recover-rows",
        t,
        format!(
            "{} rows repaired in one transaction ({} cases, {} documents, {} prescriptions; tables given child first, put back parents first): the accident is transaction {} found in the archived WAL after {}; {untouched} rows it did not touch were not written, and the later work was kept ({})",
            r.repaired(),
            table("procedure_cases"),
            table("documents"),
            table("prescriptions"),
            r.accident.as_ref().map_or_else(|| "?".to_owned(), |a| a.xid.to_string()),
            at.strftime("%H:%M:%S"),
            kept.join(", ")
        ),
    );
    check_cancel()?;

    // 7. The whole database at the moment before the mistake.
    let t = Instant::now();
    let restored = workdir.join("pitr/data");
    std::fs::create_dir_all(workdir.join("pitr"))?;
    cluster::hand_over(&workdir.join("pitr"), 0o755)?;
    let request = RestoreRequest { what: "medicapp-db".into(), to: restored, at: Some(at.to_string()), start: true, ..RestoreRequest::default() };
    let RestoreReport::Pitr(pitr) = restore(&ws, &request, &fetch, &Silent, cancel)? else {
        return Err(DemoError::Verification("restoring medicapp-db did not restore a physical base backup".into()));
    };
    let (out, c) = (&pitr.outcome, pitr.cluster.as_ref().expect("a restore asked to start returns its server"));
    let mut then = c.connect("medicapp")?;
    let then_cases = count(&mut then, "SELECT count(*) FROM procedure_cases")?;
    if then_cases != before[0] {
        return Err(DemoError::Verification(format!("the restore at {at} has {then_cases} procedure cases, {} existed then", before[0])));
    }
    drop(then);
    let amcheck = c
        .bin
        .command("pg_amcheck")?
        .args(["--install-missing", "--heapallindexed", "-h"])
        .arg(&c.socket_dir)
        .args(["-p", &c.port.to_string(), "-U", "postgres", "-d", "medicapp"])
        .output()?;
    if !amcheck.status.success() {
        return Err(DemoError::Verification(format!("pg_amcheck: {}", String::from_utf8_lossy(&amcheck.stdout).lines().next().unwrap_or("failed"))));
    }
    let rto_ms = out.total_ms;
    let (restore_ms, wal_segments, recovery_ms) = (out.restore_ms, out.wal_segments, out.recovery_ms);
    // Stops the restored server before its files go.
    drop(pitr);
    let _ = std::fs::remove_dir_all(workdir.join("pitr"));
    steps.report.pitr_rto_ms = rto_ms;
    steps.done(
        "PITR",
        t,
        format!(
            "database restored at {} and promoted in {:.1}s (files {:.1}s + replay of {} WAL segments {:.1}s; objective 2h); {then_cases} cases as then, pg_amcheck clean",
            at.strftime("%H:%M:%S"),
            rto_ms as f64 / 1000.0,
            restore_ms as f64 / 1000.0,
            wal_segments,
            recovery_ms as f64 / 1000.0
        ),
    );
    // The drill below restores the latest state: everything archived.
    switch_and_wait_archived(&mut db, Duration::from_mins(2))?;
    drop(db);
    drop(admin);
    drop(live);
    check_cancel()?;

    // 8. Signed documents.
    let t = Instant::now();
    let fb = backup(&ws, BackupRequest { component: Some("signed-documents".into()), ..BackupRequest::default() }, &Silent, cancel)?;
    if let Some(e) = fb.failure() {
        return Err(e.into());
    }
    let fb = fb.outcome;
    steps.done(
        "documents",
        t,
        format!("{} signed PDFs ({}) backed up: {} stored", fb.header.summary.files, mib(fb.header.summary.bytes), mib(fb.header.summary.stored_bytes)),
    );
    let t = Instant::now();
    let target = workdir.join("restored-documents");
    let sub = documents.strip_prefix("/").unwrap_or(&documents).display().to_string();
    let restored = restore(&ws, &RestoreRequest { what: format!("{}:{sub}", fb.id.to_hex()), to: target.clone(), ..RestoreRequest::default() }, &fetch, &Silent, cancel)?;
    if let Some(e) = restored.failure() {
        return Err(e.into());
    }
    let RestoreReport::Files(ro) = restored else {
        return Err(DemoError::Verification("restoring the documents' snapshot did not restore files".into()));
    };
    let ro = ro.outcome;
    let files = datasets::compare_trees(&documents, &target).map_err(DemoError::Verification)?;
    steps.report.files_verified = files;
    steps.report.documents_restore_ms = steps.done("restore", t, format!("{} documents restored and identical to the source, byte for byte ({} in {:.2}s)", files, mib(ro.bytes), ro.duration_ms as f64 / 1000.0));

    let t = Instant::now();
    let chk = reprise_ops::check::check(&ws, ReadData::All, &Silent, cancel)?;
    if let Some(e) = chk.failure() {
        return Err(e.into());
    }
    let repo = ws.open(None)?;
    let view = wal::ArchiveView::load(&repo, "medicapp-db")?;
    steps.done("check", t, format!("{} packs and {} archived WAL files read back and verified", chk.report.packs_read, view.files));

    // 9. The monthly restore drill of the plan, as `reprise drill run monthly`.
    let t = Instant::now();
    let drill = reprise_ops::drill::run(&ws, &DrillRequest { name: "monthly".into(), scratch: None }, &fetch, &Silent, cancel)?;
    if let Some(e) = drill.failure() {
        return Err(e.into());
    }
    let r = &drill.record;
    let checks = r.validations.len();
    let referenced = r.validations.iter().find(|v| v.kind == "documents-referenced").and_then(|v| v.measured.clone()).unwrap_or_default();
    steps.report.drill_id = Some(drill.id.to_hex());
    steps.report.drill_rto_ms = r.rto_ms;
    steps.report.drill_checks = checks as u64;
    steps.done(
        "drill",
        t,
        format!(
            "drill 'monthly' passed: database (latest) and documents restored into a private scratch copy, RTO {:.1}s (objectives 2h and 4h); {checks} checks passed (patient count, cases, the newest documents, all {referenced} documents the restored database references present with their SHA-256, pg_amcheck, packs read back); scratch copy removed; record {} stored encrypted and signed",
            r.rto_ms as f64 / 1000.0,
            drill.id.short()
        ),
    );
    check_cancel()?;

    // 10. What the operations above recorded, verified as an auditor would.
    let t = Instant::now();
    let ledger = reprise_ops::ledger::open(&ws, &repo, reprise_ops::ledger::keys(&repo)?, reprise_ops::ledger::Purpose::Read)?;
    let verified = ledger.verify().map_err(OpsError::from)?;
    if verified.tampered() || verified.ledgers.is_empty() {
        return Err(DemoError::Verification(format!("ledger verify: {} ledger(s), tampering found: {}", verified.ledgers.len(), verified.tampered())));
    }
    steps.report.ledger_entries = verified.ledgers.iter().map(|l| l.size).sum();
    steps.report.ledger_signatures = verified.ledgers.iter().map(|l| l.signatures).sum();
    steps.report.ledger_verified = true;
    steps.done(
        "ledger",
        t,
        format!(
            "{} entries recorded by the operations above (repository, credential, backups, recover-rows, restores, check, drill); `ledger verify`: every root recomputed, {} signatures verified",
            steps.report.ledger_entries, steps.report.ledger_signatures
        ),
    );
    Ok(steps.report)
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                    stack.push(e.path());
                }
            }
        }
    }
    out
}

/// How the servers this demo starts call back into this executable for
/// WAL: with the demo's plan, as `reprise --plan` would.
struct DemoFetch {
    exe: PathBuf,
    plan: PathBuf,
}

impl FetchCommand for DemoFetch {
    fn standalone(&self, component: &str) -> String {
        format!(
            "{} --plan {} wal-fetch {} %f %p",
            cluster::shell_quote(&self.exe.display().to_string()),
            cluster::shell_quote(&self.plan.display().to_string()),
            cluster::shell_quote(component)
        )
    }

    fn spool_only(&self, spool: &Path, component: &str) -> String {
        format!(
            "{} wal-fetch --spool {} --spool-only {} %f %p",
            cluster::shell_quote(&self.exe.display().to_string()),
            cluster::shell_quote(&spool.display().to_string()),
            cluster::shell_quote(component)
        )
    }
}
