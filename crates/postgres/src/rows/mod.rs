//! Repairing rows an accident destroyed (the human-error scenario: a
//! `DELETE` or `UPDATE` run by mistake on a live database), and nothing
//! else.
//!
//! A live database keeps working after the mistake, so restoring the rows
//! "as they were at `--at`" would also undo every legitimate change made
//! since. `recover-rows` compares three states of each table instead
//! ([`diff`]): *before* the accident (a scratch restore at `--at`), *after*
//! it (a second scratch restore right after the accident's commit, found
//! in the archived WAL ([`waldump`]) or given with `--until`), and *now*
//! (the live table). Only rows the accident changed are considered; of
//! those, the ones nobody touched since are repaired, and the ones changed
//! since are conflicts, shown with their three versions and left alone
//! unless `--conflicts before` says to put them back anyway.
//!
//! Rows are read with `COPY` in PostgreSQL's own text representation
//! ([`state`]) and written back as guarded SQL literals ([`script`]): one
//! transaction, parents before children for inserts and children before
//! parents for deletes, whatever order the tables were given in
//! ([`catalog`]). The script is always written (readable by its owner
//! only: it holds patient rows) and safe to run twice; `--apply` runs the
//! same statements in one transaction.
//!
//! Why two scratch restores rather than one paused recovery moved forward:
//! each state is an ordinary promoted cluster queried with ordinary SQL,
//! the restore path stays the one every other restore uses and tests, and
//! the price (a second restore of the same base backup) is paid by a
//! command run once per incident.

mod catalog;
mod diff;
mod script;
mod state;
mod waldump;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use reprise_engine::{CancelToken, NoProgress, Repository};

use crate::cluster::PgBin;
use crate::conn;
use crate::error::{PgError, Result};
use crate::restore::{self, PitrOptions, Target};
use crate::wal;
use crate::walname::{Lsn, Segment};

use catalog::LiveTable;
pub use diff::{ConflictKind, Damage};
use diff::{Case, Key, Now, Row, Verdict};
use script::TableSql;
use state::Relfile;

/// What to do with a row the accident damaged and someone changed since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictChoice {
    /// Leave it as it is now (listed in the report and the script).
    #[default]
    Keep,
    /// Put back the row as it was before the accident, overwriting the
    /// later change.
    Before,
}

#[derive(Debug, Clone)]
pub struct RowRecoveryOptions {
    pub component: String,
    /// `schema.table` or `table`; several tables (a parent and the
    /// children a cascading delete emptied) are repaired from the same two
    /// scratch restores, in foreign-key order, in one transaction.
    pub tables: Vec<String>,
    /// Before the accident.
    pub at: Target,
    /// Right after the accident; `None`: right after the first transaction
    /// that changed the tables after `at` (found in the archived WAL).
    pub until: Option<Target>,
    /// SQL predicate choosing which damaged rows to repair (evaluated on a
    /// row's version before the accident).
    pub predicate: Option<String>,
    pub conflicts: ConflictChoice,
    /// Live database connection (the component's, with the table's database).
    pub live: String,
    pub password_env: Option<String>,
    /// Database that holds the table.
    pub database: String,
    pub apply: bool,
    /// Where to write the script (always written).
    pub script: PathBuf,
    /// Scratch folder (removed afterwards).
    pub scratch: PathBuf,
    /// How the scratch servers ask this process for WAL.
    pub spool_fetch: restore::SpoolFetch,
    pub bin: Option<PathBuf>,
    pub cancel: CancelToken,
}

/// A transaction that changed the tables, from its WAL records.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Transaction {
    pub xid: u32,
    pub committed_at: String,
    /// LSN of its commit record (`--until` takes it).
    pub commit_lsn: String,
    pub tables: Vec<TransactionTable>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TransactionTable {
    pub table: String,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub truncated: bool,
}

/// A column left out of the comparison, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnNote {
    pub column: String,
    pub reason: String,
}

/// One conflict with its three versions (column → text; `None`: no row).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConflictRow {
    pub kind: ConflictKind,
    pub damage: Damage,
    /// The row's key, as SQL (`"id" = '7'`).
    pub key: String,
    pub before: Option<BTreeMap<String, Option<String>>>,
    pub after: Option<BTreeMap<String, Option<String>>>,
    pub now: Option<BTreeMap<String, Option<String>>>,
    /// Put back as before (`--conflicts before`).
    pub restored: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableRecovery {
    pub table: String,
    /// What the accident did (to the rows `--where` selects).
    pub deleted: u64,
    pub updated: u64,
    pub inserted: u64,
    pub keys_changed: u64,
    /// Damaged rows nobody touched since: repaired (or to repair).
    pub repaired: u64,
    /// Damaged rows changed since: listed in `conflict_rows`.
    pub conflicts: u64,
    /// Damaged rows already as they were before (repaired by hand, or by
    /// an earlier run): nothing to do.
    pub already_as_before: u64,
    /// Damaged rows `--where` left out.
    pub filtered_out: u64,
    /// Rows the accident did not touch: never written.
    pub untouched: u64,
    pub compared_columns: Vec<String>,
    pub not_compared: Vec<ColumnNote>,
    pub conflict_rows: Vec<ConflictRow>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RowRecovery {
    /// Before the accident (`--at`), and where its replay ended.
    pub at: String,
    pub before_lsn: String,
    /// Right after the accident (`--until`), if given.
    pub until: Option<String>,
    pub after_lsn: String,
    /// The accident, found in the WAL when `--until` is not given.
    pub accident: Option<Transaction>,
    /// Every transaction that changed the tables between the two states.
    pub between: Vec<Transaction>,
    /// Later transactions that changed the tables (when the accident was
    /// found in the WAL): another end to choose with `--until`.
    pub later: Vec<Transaction>,
    pub conflicts: ConflictChoice,
    pub tables: Vec<TableRecovery>,
    /// Warnings: several transactions in the window, cascades into tables
    /// not listed.
    pub notes: Vec<String>,
    pub applied: bool,
    /// Rows written by `--apply`.
    pub rows_written: u64,
    /// Statements that found their row changed since the comparison (or
    /// already repaired) and did nothing.
    pub statements_skipped: u64,
    pub script: PathBuf,
    pub scratch_restore_ms: u64,
    pub total_ms: u64,
}

impl RowRecovery {
    #[must_use]
    pub fn repaired(&self) -> u64 {
        self.tables.iter().map(|t| t.repaired).sum()
    }
    #[must_use]
    pub fn conflicts(&self) -> u64 {
        self.tables.iter().map(|t| t.conflicts).sum()
    }
}

/// One table's rows in a scratch state, with the columns they were read in.
struct TableState {
    columns: Vec<String>,
    /// Every column the table had in this state (compared or not).
    all_columns: Vec<String>,
    rows: Vec<Row>,
    relfiles: HashMap<u32, Relfile>,
}

struct ScratchState {
    tables: Vec<TableState>,
    /// End of the last record replayed.
    end: Lsn,
    base_backup: String,
    restore_ms: u64,
}

/// Names a state in messages.
fn label(target: &Target, after: bool) -> String {
    if after { format!("right after the accident ({target})") } else { format!("at --at {target}") }
}

/// Restores the component at `target` into `dir`, reads every table, stops
/// the cluster and removes its files.
fn scratch_state(repo: &Arc<Repository>, opts: &RowRecoveryOptions, tables: &[LiveTable], target: &Target, dir: &Path, after: bool) -> Result<ScratchState> {
    std::fs::create_dir_all(dir).map_err(|e| PgError::io(dir, e))?;
    crate::cluster::hand_over(dir, 0o700)?;
    let pitr = PitrOptions {
        component: opts.component.clone(),
        target: target.clone(),
        to: dir.join("data"),
        start: true,
        delta: false,
        tablespace_map: crate::tablespaces::TablespaceMap::default(),
        standalone_fetch: String::new(),
        spool_fetch: opts.spool_fetch.clone(),
        bin: opts.bin.clone(),
        threads: 0,
        cancel: opts.cancel.clone(),
        keep_running: false,
        settings: Vec::new(),
        base: None,
    };
    let (outcome, cluster) = restore::restore(repo, &pitr, &NoProgress)?;
    let cluster = cluster.expect("started restore returns its cluster");
    let mut client = cluster
        .connect(&opts.database)
        .map_err(|e| PgError::Invalid(format!("database '{}' {}: {e}", opts.database, label(target, after))))?;
    state::prepare_session(&mut client)?;
    let end: Option<String> = client.query_one("SELECT pg_last_wal_replay_lsn()::text", &[]).map_err(|e| PgError::sql(&e))?.get(0);
    let end = end.or(outcome.reached_lsn.clone()).and_then(|l| l.parse::<Lsn>().ok()).unwrap_or_default();
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let Some(names) = state::columns(&mut client, &t.qualified)? else {
            return Err(PgError::Invalid(format!("table {} did not exist {}: choose a later --at", t.display, label(target, after))));
        };
        for k in &t.key {
            if !names.contains(k) {
                return Err(PgError::Invalid(format!("{}: key column {k} did not exist {}: rows cannot be matched", t.display, label(target, after))));
            }
        }
        let columns: Vec<String> = t.columns.iter().filter(|c| !c.generated && names.contains(&c.name)).map(|c| c.name.clone()).collect();
        let relfiles = state::relfiles(&mut client, &t.qualified)?;
        let rows = state::read(
            &mut client,
            &state::Read { from: &t.source(), columns: &columns, order_by: &t.key, locations: Some(&relfiles), predicate: opts.predicate.as_deref(), keep: None },
        )
        .map_err(|e| match (&opts.predicate, e) {
            (Some(p), PgError::Sql(m)) => PgError::Invalid(format!("--where {p} on {} {}: {m}", t.display, label(target, after))),
            (_, e) => e,
        })?;
        out.push(TableState { columns, all_columns: names, rows, relfiles });
    }
    drop(client);
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
    Ok(ScratchState { tables: out, end, base_backup: outcome.base_backup, restore_ms: outcome.total_ms })
}

/// The archived segments from the one holding `from` on, in replay order.
fn segments_from(repo: &Repository, component: &str, base_backup: &str, from: Lsn) -> Result<(Vec<Segment>, u64)> {
    let bases = restore::base_backups(repo, component)?;
    let base = bases
        .iter()
        .find(|b| b.id.to_hex() == base_backup)
        .ok_or_else(|| PgError::Recovery(format!("base backup {base_backup} of '{component}' disappeared during the recovery")))?;
    let seg = base.segment_size;
    let view = wal::ArchiveView::load(repo, component)?;
    let latest = view.segments.keys().next_back().copied().unwrap_or(base.timeline).max(base.timeline);
    let newest = view.segments.get(&latest).and_then(|s| s.iter().next_back().copied()).unwrap_or(base.start_segment().number);
    let mut path: Vec<Segment> =
        wal::required_segments(repo, component, base.start_segment(), latest, newest)?.into_iter().filter(|s| s.number >= from.0 / seg).take_while(|s| view.contains(*s)).collect();
    // A segment still being streamed is read from its newest partial copy.
    let next = path.last().map_or(Segment::of_lsn(latest, from, seg), Segment::next);
    if view.stream_partials.contains_key(&next.name(seg)) {
        path.push(next);
    }
    Ok((path, seg))
}

fn transaction(t: &waldump::Transaction, names: &HashMap<u32, String>) -> Transaction {
    let mut tables: BTreeMap<String, TransactionTable> = BTreeMap::new();
    for (rel, c) in &t.changes {
        let name = names.get(rel).cloned().unwrap_or_else(|| format!("relation file {rel}"));
        let e = tables.entry(name.clone()).or_insert_with(|| TransactionTable { table: name, ..TransactionTable::default() });
        e.inserted += c.inserted;
        e.updated += c.updated;
        e.deleted += c.deleted;
    }
    for rel in &t.truncated {
        let name = names.get(rel).cloned().unwrap_or_else(|| format!("relation file {rel}"));
        tables.entry(name.clone()).or_insert_with(|| TransactionTable { table: name, ..TransactionTable::default() }).truncated = true;
    }
    Transaction { xid: t.xid, committed_at: t.committed_at.clone(), commit_lsn: t.commit_lsn.to_string(), tables: tables.into_values().collect() }
}

/// How many later transactions are listed beside the accident found.
const LATER_SHOWN: usize = 5;

pub fn recover_rows(repo: &Arc<Repository>, opts: &RowRecoveryOptions) -> Result<RowRecovery> {
    let started = Instant::now();
    if opts.tables.is_empty() {
        return Err(PgError::Invalid("name the table to recover with --table".into()));
    }
    let mut live = conn::connect(&with_dbname(&opts.live, &opts.database), opts.password_env.as_deref())?;
    state::prepare_session(&mut live)?;
    let mut tables: Vec<LiveTable> = Vec::new();
    for name in &opts.tables {
        let t = catalog::describe(&mut live, name)?;
        if !tables.iter().any(|x| x.oid == t.oid) {
            tables.push(t);
        }
    }
    if let Some(p) = &opts.predicate {
        // Checked on the live tables before the long restores.
        for t in &tables {
            live.batch_execute(&format!("SELECT 1 FROM {} WHERE ({p}) LIMIT 0", t.source()))
                .map_err(|e| PgError::Invalid(format!("--where {p} on {}: {}", t.display, PgError::sql(&e))))?;
        }
    }
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let fks = catalog::foreign_keys(&mut live, &oids)?;
    let order = catalog::parents_first(&tables, &fks);
    let bin = PgBin::find(opts.bin.as_deref())?;

    std::fs::create_dir_all(&opts.scratch).map_err(|e| PgError::io(&opts.scratch, e))?;
    crate::cluster::hand_over(&opts.scratch, 0o700)?;
    let _cleanup = RemoveOnDrop(opts.scratch.clone());

    let before = scratch_state(repo, opts, &tables, &opts.at, &opts.scratch.join("before"), false)?;
    let mut report =
        RowRecovery { at: opts.at.to_string(), before_lsn: before.end.to_string(), until: opts.until.as_ref().map(ToString::to_string), conflicts: opts.conflicts, script: opts.script.clone(), ..RowRecovery::default() };
    let mut relfile_names: HashMap<u32, String> = HashMap::new();
    let mut rels = HashSet::new();
    for (t, s) in tables.iter().zip(&before.tables) {
        for f in s.relfiles.values() {
            rels.insert(*f);
            relfile_names.insert(f.relfilenode, t.display.clone());
        }
    }
    let (segments, segment_size) = segments_from(repo, &opts.component, &before.base_backup, before.end)?;
    let archive = waldump::Archive {
        repo,
        component: &opts.component,
        bin: &bin,
        dir: opts.scratch.join("wal"),
        segments,
        segment_size,
        cancel: &opts.cancel,
    };
    // Records of the accident may precede the state before it (a statement
    // that ran while --at passed): read from the start of that segment.
    let scan_from = Lsn(before.end.0 / segment_size * segment_size);
    let mut window = waldump::Window::new(rels, before.end);

    let after_target = if let Some(t) = &opts.until {
        t.clone()
    } else {
        let mut found: Option<Lsn> = None;
        let mut later = 0;
        archive.scan(scan_from, |line, lsn| {
            if window.feed(line).is_some() {
                if found.is_none() {
                    found = window.transactions.last().map(|t| t.commit_lsn);
                } else {
                    later += 1;
                }
            }
            // Later transactions are listed for choosing another end, from
            // at most one segment's worth of WAL further.
            found.is_none_or(|f| later < LATER_SHOWN && lsn.0 < f.0 + segment_size)
        })?;
        let Some(commit) = found else {
            return Err(PgError::Invalid(format!(
                "no transaction changed {} after --at {} in the archived WAL (replayed from LSN {}): if the accident is more recent, its WAL is not archived yet (run SELECT pg_switch_wal() on the server); otherwise check --at, or name the end of the accident with --until",
                tables.iter().map(|t| t.display.as_str()).collect::<Vec<_>>().join(", "),
                opts.at,
                before.end
            )));
        };
        Target::Lsn(commit)
    };
    let after = scratch_state(repo, opts, &tables, &after_target, &opts.scratch.join("after"), true)?;
    if opts.until.is_some() {
        archive.scan(scan_from, |line, lsn| {
            window.feed(line);
            lsn < after.end
        })?;
    }
    report.after_lsn = after.end.to_string();
    report.scratch_restore_ms = before.restore_ms + after.restore_ms;
    let (between, later): (Vec<_>, Vec<_>) = window.transactions.iter().partition(|t| t.commit_lsn < after.end);
    report.between = between.iter().map(|t| transaction(t, &relfile_names)).collect();
    if opts.until.is_none() {
        report.accident = report.between.first().cloned();
        report.later = later.iter().take(LATER_SHOWN).map(|t| transaction(t, &relfile_names)).collect();
    }
    if report.between.len() > 1 {
        report.notes.push(format!(
            "{} transactions changed these tables between --at and --until (xids {}): all their changes are treated as the accident's",
            report.between.len(),
            report.between.iter().map(|t| t.xid.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }

    // Per table: compare, decide, write statements.
    let mut plans: Vec<TablePlan> = Vec::with_capacity(tables.len());
    for (i, t) in tables.iter().enumerate() {
        let plan = plan_table(&mut live, t, &before.tables[i], &after.tables[i], &window, after.end, &fks, opts.conflicts)?;
        report.tables.push(plan.report.clone());
        plans.push(plan);
    }
    cascade_notes(&tables, &fks, &report.tables, &mut report.notes);

    let text = render(opts, &report, &tables, &plans, &order);
    write_private(&opts.script, &text)?;
    let statements: Vec<&String> = order
        .iter()
        .flat_map(|&i| plans[i].inserts.iter())
        .chain(order.iter().flat_map(|&i| plans[i].updates.iter()))
        .chain(order.iter().rev().flat_map(|&i| plans[i].deletes.iter()))
        .collect();
    if opts.apply && !statements.is_empty() {
        let failed = |e: &postgres::Error| PgError::Sql(format!("applying {}: {} (nothing was changed: the script runs in one transaction)", opts.script.display(), PgError::sql(e)));
        let mut tx = live.transaction().map_err(|e| failed(&e))?;
        tx.batch_execute(&script::session_sql(true)).map_err(|e| failed(&e))?;
        for s in statements {
            if opts.cancel.is_cancelled() {
                return Err(PgError::Interrupted);
            }
            match tx.execute(s.as_str(), &[]).map_err(|e| failed(&e))? {
                0 => report.statements_skipped += 1,
                n => report.rows_written += n,
            }
        }
        tx.commit().map_err(|e| failed(&e))?;
        report.applied = true;
    }
    report.total_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// One table's decisions and statements.
struct TablePlan {
    report: TableRecovery,
    inserts: Vec<String>,
    updates: Vec<String>,
    deletes: Vec<String>,
    /// Comment lines: conflicts with their versions.
    comments: Vec<String>,
}

/// `rows` read in `from` columns, keeping only `to` columns in that order.
fn project(rows: Vec<Row>, from: &[String], to: &[String]) -> Vec<Row> {
    let idx: Vec<usize> = to.iter().map(|c| from.iter().position(|f| f == c).expect("compared columns are read")).collect();
    if idx.iter().enumerate().all(|(i, &j)| i == j) && from.len() == to.len() {
        return rows;
    }
    rows.into_iter().map(|r| Row { values: idx.iter().map(|&j| r.values[j].clone()).collect(), ..r }).collect()
}

#[allow(clippy::too_many_arguments)] // one table's three states and how to decide: splitting them would only rename them
fn plan_table(
    live: &mut postgres::Client,
    t: &LiveTable,
    before: &TableState,
    after: &TableState,
    window: &waldump::Window,
    after_end: Lsn,
    fks: &[catalog::ForeignKey],
    choice: ConflictChoice,
) -> Result<TablePlan> {
    // Schema drift: only columns the three states share are compared.
    let columns: Vec<String> =
        t.columns.iter().filter(|c| !c.generated && before.columns.contains(&c.name) && after.columns.contains(&c.name)).map(|c| c.name.clone()).collect();
    let mut not_compared = Vec::new();
    for c in &t.columns {
        let reason = if c.generated {
            "generated by the server from other columns"
        } else if !before.columns.contains(&c.name) {
            "added since --at: rows put back get its default, rows updated keep their value"
        } else if !after.columns.contains(&c.name) {
            "not present right after the accident"
        } else {
            continue;
        };
        not_compared.push(ColumnNote { column: c.name.clone(), reason: reason.into() });
    }
    for c in &before.all_columns {
        if !t.columns.iter().any(|x| &x.name == c) {
            not_compared.push(ColumnNote { column: c.clone(), reason: "dropped since --at: its values cannot be put back".into() });
        }
    }
    let key: Vec<usize> = t.key.iter().map(|k| columns.iter().position(|c| c == k).expect("key columns are checked in every state")).collect();
    let identity_always: Vec<bool> = columns.iter().map(|c| t.columns.iter().any(|x| &x.name == c && x.identity_always)).collect();
    let b_rows = project(before.rows.clone(), &before.columns, &columns);
    let a_rows = project(after.rows.clone(), &after.columns, &columns);

    let successors: HashMap<usize, (diff::TupleLoc, u32)> =
        b_rows.iter().enumerate().filter_map(|(i, r)| r.loc.and_then(|l| window.successor(l, after_end)).map(|s| (i, s))).collect();
    let accident = diff::damage(&b_rows, &a_rows, &key, &successors);

    // The live rows of the damaged keys (the whole table is read: --where
    // never filters the live side).
    let mut wanted: HashSet<Key> = HashSet::new();
    for c in &accident.cases {
        if let Some(i) = c.before {
            wanted.insert(diff::key_of(&b_rows[i].values, &key));
        }
        if let Some(j) = c.after {
            wanted.insert(diff::key_of(&a_rows[j].values, &key));
        }
    }
    let keep = |values: &[Option<String>]| wanted.contains(&diff::key_of(values, &key));
    let now_rows = state::read(live, &state::Read { from: &t.source(), columns: &columns, order_by: &t.key, locations: None, predicate: None, keep: Some(&keep) })?;
    let now: HashMap<Key, Vec<Option<String>>> = now_rows.into_iter().map(|r| (diff::key_of(&r.values, &key), r.values)).collect();

    let sql = TableSql { qualified: &t.qualified, columns: &columns, identity_always: &identity_always, key: &key };
    let mut report = TableRecovery {
        table: t.display.clone(),
        filtered_out: accident.filtered,
        untouched: accident.untouched,
        compared_columns: columns.clone(),
        not_compared,
        ..TableRecovery::default()
    };
    let mut inserts: Vec<Vec<Option<String>>> = Vec::new();
    let mut deletes: Vec<Vec<Option<String>>> = Vec::new();
    let mut updates = Vec::new();
    let mut comments = Vec::new();
    let as_map = |r: Option<&Vec<Option<String>>>| r.map(|v| columns.iter().cloned().zip(v.iter().cloned()).collect::<BTreeMap<_, _>>());
    for case in &accident.cases {
        match case.damage {
            Damage::Deleted => report.deleted += 1,
            Damage::Updated => report.updated += 1,
            Damage::Inserted => report.inserted += 1,
            Damage::KeyChanged => report.keys_changed += 1,
        }
        let a = case.before.map(|i| &b_rows[i].values);
        let b = case.after.map(|j| &a_rows[j].values);
        let n = Now::of(case, &b_rows, &a_rows, &key, &now);
        match diff::verdict(case, &b_rows, &a_rows, &n) {
            Verdict::Repair => {
                report.repaired += 1;
                match (a, b) {
                    (Some(a), None) => inserts.push(a.clone()),
                    (None, Some(b)) => deletes.push(b.clone()),
                    (Some(a), Some(b)) => updates.extend(sql.update(b, a)),
                    (None, None) => {}
                }
            }
            Verdict::AlreadyAsBefore => report.already_as_before += 1,
            Verdict::Conflict(kind) => {
                report.conflicts += 1;
                let shown = n.shown(case, kind);
                let restored = choice == ConflictChoice::Before;
                let at = a.or(b).map(|r| sql.key_text(r)).unwrap_or_default();
                comments.push(format!(
                    "-- conflict ({}), {}: {at}\n--   columns:             {}\n--   before the accident: {}\n--   after the accident:  {}\n--   now:                 {}",
                    kind_text(kind),
                    if restored { "put back as before the accident (--conflicts before)" } else { "left as it is now (--conflicts before would put back the row as it was before)" },
                    sql.column_list(),
                    TableSql::shown(a),
                    TableSql::shown(b),
                    TableSql::shown(shown),
                ));
                report.conflict_rows.push(ConflictRow { kind, damage: case.damage, key: at, before: as_map(a), after: as_map(b), now: as_map(shown), restored });
                if restored {
                    resolve_before(&sql, case, a, &n, &mut inserts, &mut updates, &mut deletes);
                }
            }
        }
    }
    // Self-references: parents inserted before their children, children
    // deleted before their parents.
    let self_refs: Vec<(Vec<usize>, Vec<usize>)> = fks
        .iter()
        .filter(|f| f.table == t.oid && f.references == t.oid)
        .filter_map(|f| {
            let pos = |names: &[String]| names.iter().map(|n| columns.iter().position(|c| c == n)).collect::<Option<Vec<usize>>>();
            Some((pos(&f.columns)?, pos(&f.referenced_columns)?))
        })
        .collect();
    let ins_refs: Vec<&[Option<String>]> = inserts.iter().map(Vec::as_slice).collect();
    let inserts = diff::tree_order(&ins_refs, &self_refs).into_iter().map(|i| sql.insert(&inserts[i])).collect();
    let del_refs: Vec<&[Option<String>]> = deletes.iter().map(Vec::as_slice).collect();
    let deletes = diff::tree_order(&del_refs, &self_refs).into_iter().rev().map(|i| sql.delete(&deletes[i])).collect();
    Ok(TablePlan { report, inserts, updates, deletes, comments })
}

/// Statements that put a conflicting row back as it was before the
/// accident, guarded by its version now.
fn resolve_before(
    sql: &TableSql<'_>,
    case: &Case,
    a: Option<&Vec<Option<String>>>,
    n: &Now<'_>,
    inserts: &mut Vec<Vec<Option<String>>>,
    updates: &mut Vec<String>,
    deletes: &mut Vec<Vec<Option<String>>>,
) {
    match a {
        Some(a) => {
            if let Some(now) = n.at_before_key {
                updates.extend(sql.update(now, a));
            } else if let (Damage::KeyChanged, Some(now)) = (case.damage, n.at_after_key) {
                updates.extend(sql.update(now, a));
            } else {
                inserts.push(a.clone());
            }
        }
        None => {
            if let Some(now) = n.at_after_key {
                deletes.push(now.clone());
            }
        }
    }
}

fn kind_text(k: ConflictKind) -> &'static str {
    match k {
        ConflictKind::ReinsertedSince => "deleted by the accident, a row with its key was inserted since",
        ConflictKind::ChangedSince => "changed by the accident, changed again since",
        ConflictKind::DeletedSince => "changed by the accident, deleted since",
        ConflictKind::KeyTaken => "moved to another key by the accident, its old key is taken now",
    }
}

/// Warns about tables not listed that a cascade from a listed one changes.
fn cascade_notes(tables: &[LiveTable], fks: &[catalog::ForeignKey], reports: &[TableRecovery], notes: &mut Vec<String>) {
    for fk in fks {
        if tables.iter().any(|t| t.oid == fk.table) {
            continue;
        }
        let Some(i) = tables.iter().position(|t| t.oid == fk.references) else { continue };
        let r = &reports[i];
        let deletes = r.deleted > 0 && matches!(fk.on_delete.as_str(), "c" | "n" | "d");
        let key_updates = (r.keys_changed > 0 || r.updated > 0) && matches!(fk.on_update.as_str(), "c" | "n" | "d");
        if deletes || key_updates {
            notes.push(format!(
                "{} references {} with ON {} {}: rows the cascade changed there are not repaired unless it is listed too (add --table {})",
                fk.table_display,
                tables[i].display,
                if deletes { "DELETE" } else { "UPDATE" },
                match if deletes { fk.on_delete.as_str() } else { fk.on_update.as_str() } {
                    "c" => "CASCADE",
                    "n" => "SET NULL",
                    _ => "SET DEFAULT",
                },
                fk.table_display
            ));
        }
    }
}

/// The script: a header that says what was compared, then one transaction.
fn render(opts: &RowRecoveryOptions, r: &RowRecovery, tables: &[LiveTable], plans: &[TablePlan], order: &[usize]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "-- reprise recover-rows: component '{}', database '{}'", opts.component, opts.database);
    let _ = writeln!(s, "-- before the accident: --at {} (replayed up to LSN {})", r.at, r.before_lsn);
    match (&r.accident, &r.until) {
        (Some(a), _) => {
            let _ = writeln!(s, "-- the accident: transaction {} committed {} (commit record at LSN {}), found in the archived WAL: {}", a.xid, a.committed_at, a.commit_lsn, changes_text(a));
        }
        (None, Some(u)) => {
            let _ = writeln!(s, "-- right after the accident: --until {u}");
            for t in &r.between {
                let _ = writeln!(s, "--   transaction {} committed {} (LSN {}): {}", t.xid, t.committed_at, t.commit_lsn, changes_text(t));
            }
        }
        (None, None) => {}
    }
    let _ = writeln!(s, "-- right after the accident: replayed up to LSN {}", r.after_lsn);
    for n in &r.notes {
        let _ = writeln!(s, "-- note: {n}");
    }
    let _ = writeln!(
        s,
        "-- Only rows the accident changed are written; rows changed since are conflicts ({}).\n-- Every statement is guarded: it changes a row only while the row is exactly as compared,\n-- so running this script twice, or after someone changed a row, changes nothing more.",
        match r.conflicts {
            ConflictChoice::Keep => "left as they are",
            ConflictChoice::Before => "put back as before: --conflicts before",
        }
    );
    let _ = writeln!(s, "BEGIN;\n{}", script::session_sql(true));
    for &i in order {
        let (t, p) = (&tables[i], &plans[i]);
        let rep = &p.report;
        let _ = writeln!(
            s,
            "-- {}: the accident deleted {}, updated {}, inserted {}, moved {} to another key; {} to repair, {} conflict(s), {} already as before, {} left out by --where, {} untouched",
            t.display, rep.deleted, rep.updated, rep.inserted, rep.keys_changed, rep.repaired, rep.conflicts, rep.already_as_before, rep.filtered_out, rep.untouched
        );
        for n in &rep.not_compared {
            let _ = writeln!(s, "-- {}: column {} not compared: {}", t.display, script::quote_ident(&n.column), n.reason);
        }
        for c in &p.comments {
            let _ = writeln!(s, "{c}");
        }
    }
    let section = |s: &mut String, what: &str, i: usize, list: &[String]| {
        if !list.is_empty() {
            let _ = writeln!(s, "-- {}: {what} ({})", tables[i].display, list.len());
            for st in list {
                let _ = writeln!(s, "{st}");
            }
        }
    };
    for &i in order {
        section(&mut s, "rows to re-insert", i, &plans[i].inserts);
    }
    for &i in order {
        section(&mut s, "rows to put back", i, &plans[i].updates);
    }
    for &i in order.iter().rev() {
        section(&mut s, "rows to delete", i, &plans[i].deletes);
    }
    s.push_str("COMMIT;\n");
    s
}

fn changes_text(t: &Transaction) -> String {
    t.tables
        .iter()
        .map(|c| {
            if c.truncated {
                format!("{} truncated", c.table)
            } else {
                format!("{} ({} inserted, {} updated, {} deleted)", c.table, c.inserted, c.updated, c.deleted)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the script readable by its owner only: it holds patient rows.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(|e| PgError::io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| PgError::io(path, e))
}

/// `conn` with its database replaced by `db`.
#[must_use]
pub fn with_dbname(conn: &str, db: &str) -> String {
    if conn.contains("://") {
        // postgresql://host/db?params
        if let Some(scheme_end) = conn.find("://") {
            let rest = &conn[scheme_end + 3..];
            let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
            let params = tail.split_once('?').map(|(_, p)| format!("?{p}")).unwrap_or_default();
            return format!("{}://{authority}/{db}{params}", &conn[..scheme_end]);
        }
    }
    let mut parts: Vec<String> = conn.split_whitespace().filter(|kv| !kv.starts_with("dbname=")).map(str::to_owned).collect();
    parts.push(format!("dbname={db}"));
    parts.join(" ")
}

/// Removes the scratch folder (data directories, their `.run` folders, the
/// WAL read for the accident).
struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dbname_is_replaced() {
        assert_eq!(super::with_dbname("host=/tmp port=5 dbname=postgres", "app"), "host=/tmp port=5 dbname=app");
        assert_eq!(super::with_dbname("postgresql://u@h:5/postgres?sslmode=disable", "app"), "postgresql://u@h:5/app?sslmode=disable");
    }
}
