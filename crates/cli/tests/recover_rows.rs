//! `recover-rows` through the CLI, against a real PostgreSQL archiving into
//! a real repository: each test makes an accident on a live database,
//! keeps working after it (legitimate inserts, updates, deletes, schema
//! changes), runs `recover-rows --apply`, and compares the table, row for
//! row in PostgreSQL's own text output, with the state it should have: the
//! table as it would be had the accident never happened, with the later
//! work kept — and, for rows the accident damaged and someone changed
//! since (conflicts), as they are now.
//!
//! The intended state is built in the database itself, independently of
//! reprise: a copy of the table taken before the accident, to which the
//! test applies the same later work.

use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::pg::{COMPONENT, Env, setup};

/// The table's rows as COPY prints them, ordered by its first column.
fn rows_of(env: &Env, table: &str) -> String {
    let mut c = env.client("postgres");
    let mut out = String::new();
    c.copy_out(format!("COPY (SELECT * FROM {table} ORDER BY 1) TO STDOUT").as_str()).expect("copy").read_to_string(&mut out).expect("read");
    out
}

fn assert_same_rows(env: &Env, table: &str, intended: &str) {
    let (got, want) = (rows_of(env, table), rows_of(env, intended));
    if got != want {
        let g: Vec<&str> = got.lines().collect();
        let w: Vec<&str> = want.lines().collect();
        let missing: Vec<&&str> = w.iter().filter(|l| !g.contains(l)).take(5).collect();
        let extra: Vec<&&str> = g.iter().filter(|l| !w.contains(l)).take(5).collect();
        panic!("{table} differs from {intended} ({} rows, {} intended):\n  missing or different: {missing:?}\n  extra or different: {extra:?}", g.len(), w.len());
    }
}

/// The position the next WAL record will take: an exact `--at` before an
/// accident (recovery stops after that record, which is not a commit).
fn insert_lsn(env: &Env) -> String {
    env.one("SELECT pg_current_wal_insert_lsn()::text")
}

/// Runs `recover-rows` with `args`, writing its script to `script`.
fn recover(env: &Env, script: &Path, args: &[&str]) -> Value {
    let mut a = vec!["recover-rows", COMPONENT, "--script", script.to_str().expect("utf8")];
    a.extend_from_slice(args);
    env.json(&a)
}

/// The accident in one transaction; returns its transaction ID.
fn accident(env: &Env, sql: &str) -> u64 {
    let mut c = env.client("postgres");
    let mut tx = c.transaction().expect("begin");
    let xid: i64 = tx.query_one("SELECT txid_current()", &[]).expect("xid").get(0);
    tx.batch_execute(sql).expect("the accident");
    tx.commit().expect("commit");
    xid as u64
}

/// A base backup taken, then `prepare` run (copies of the tables: the
/// intended states), all archived.
fn backed_up(env: &Env, prepare: &str) {
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    env.sql(prepare);
}

fn table_report<'a>(r: &'a Value, table: &str) -> &'a Value {
    r["tables"].as_array().expect("tables").iter().find(|t| t["table"] == table).unwrap_or_else(|| panic!("{table} not in {r}"))
}

fn psql(env: &Env, script: &Path) {
    let c = env.cluster();
    let out = Command::new(env.bin.dir.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&c.socket_dir)
        .args(["-p", &c.port.to_string(), "-U", "postgres", "-d", "postgres", "-f"])
        .arg(script)
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql -f {}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
}

/// Issue 15, item 1: after the accident (delete 1–100, set `val` on
/// 101–200), later legitimate work went on; the old tool reverted it.
#[test]
fn later_legitimate_work_is_kept_and_conflicts_are_left_alone() {
    let Some(env) = setup(true) else { return };
    env.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, val text, status text, n int); \
         INSERT INTO accounts SELECT g, 'v' || g, CASE WHEN g % 3 = 0 THEN 'active' ELSE 'closed' END, g FROM generate_series(1, 1000) g",
    );
    backed_up(&env, "CREATE TABLE before_accident AS SELECT * FROM accounts; CREATE TABLE intended AS SELECT * FROM accounts");
    // A transaction on the table just before --at, in the same WAL segment:
    // it is not the accident.
    env.sql("UPDATE accounts SET n = n WHERE id = 1000");
    let at = insert_lsn(&env);
    let xid = accident(&env, "DELETE FROM accounts WHERE id <= 100; UPDATE accounts SET val = 'oops' WHERE id BETWEEN 101 AND 200");
    // Later, legitimate: on untouched rows (kept), on damaged rows (conflicts).
    for later in [
        "UPDATE {t} SET n = n + 1 WHERE id BETWEEN 301 AND 350",
        "DELETE FROM {t} WHERE id BETWEEN 401 AND 410",
        "INSERT INTO {t} SELECT g, 'new' || g, 'active', 0 FROM generate_series(2001, 2010) g",
        "UPDATE {t} SET n = n + 1000 WHERE id BETWEEN 150 AND 159",
    ] {
        env.sql(&later.replace("{t}", "accounts"));
        env.sql(&later.replace("{t}", "intended"));
    }
    // Only possible after the accident: a new row reusing deleted key 50,
    // and a damaged row deleted.
    env.sql("INSERT INTO accounts VALUES (50, 'reused', 'active', 0); DELETE FROM accounts WHERE id = 160");
    env.archive_now();
    // Conflicts stay as they are now.
    env.sql(
        "CREATE TABLE expected AS SELECT * FROM intended WHERE id NOT IN (50, 160) AND id NOT BETWEEN 150 AND 159 \
         UNION ALL SELECT * FROM accounts WHERE id = 50 OR id BETWEEN 150 AND 159",
    );

    let script = env.path("repair.sql");
    let r = recover(&env, &script, &["--table", "accounts", "--at", &at, "--apply"]);
    assert_eq!(r["accident"]["xid"].as_u64(), Some(xid), "the accident found in the WAL: {r}");
    let t = table_report(&r, "public.accounts");
    let counts: Vec<u64> = ["deleted", "updated", "inserted", "repaired", "conflicts", "already_as_before", "untouched"].iter().map(|k| t[k].as_u64().expect("count")).collect();
    assert_eq!(counts, [100, 100, 0, 99 + 89, 12, 0, 800], "deleted, updated, inserted, repaired, conflicts, already, untouched: {t}");
    let conflicts: Vec<&str> = t["conflict_rows"].as_array().expect("conflicts").iter().map(|c| c["kind"].as_str().expect("kind")).collect();
    assert_eq!(conflicts.iter().filter(|k| **k == "reinserted-since").count(), 1, "{conflicts:?}");
    assert_eq!(conflicts.iter().filter(|k| **k == "changed-since").count(), 10, "{conflicts:?}");
    assert_eq!(conflicts.iter().filter(|k| **k == "deleted-since").count(), 1, "{conflicts:?}");
    assert_eq!((r["rows_written"].as_u64(), r["statements_skipped"].as_u64()), (Some(188), Some(0)), "{r}");
    assert_same_rows(&env, "accounts", "expected");
    // It wrote into the live database: the ledger says so, with counts
    // only (no table name, no row).
    let shown = env.json(&["ledger", "show"]);
    let entry = shown["entries"].as_array().expect("entries").iter().rev().find(|e| e["operation"] == "restore").expect("a restore entry for recover-rows");
    assert_eq!((entry["refs"]["kind"].as_str(), entry["counts"]["repaired"].as_u64(), entry["counts"]["applied"].as_u64()), (Some("rows"), Some(188), Some(1)), "{entry}");
    assert_eq!((entry["counts"]["conflicts"].as_u64(), entry["result"].as_str()), (Some(12), Some("problems")), "{entry}");
    assert!(!entry.to_string().contains("accounts"), "no table name in the ledger: {entry}");

    // The script is safe to run twice: it changes nothing more.
    psql(&env, &script);
    assert_same_rows(&env, "accounts", "expected");
    // A second look finds everything repaired and the same conflicts.
    let again = recover(&env, &env.path("again.sql"), &["--table", "accounts", "--at", &at]);
    let t = table_report(&again, "public.accounts");
    assert_eq!((t["repaired"].as_u64(), t["already_as_before"].as_u64(), t["conflicts"].as_u64()), (Some(0), Some(188), Some(12)), "{t}");

    // An explicit choice puts back the conflicts --where selects (150–160)
    // as they were before the accident; key 50 stays as it is now.
    let r = recover(&env, &env.path("before.sql"), &["--table", "accounts", "--at", &at, "--where", "id >= 150", "--conflicts", "before", "--apply"]);
    let t = table_report(&r, "public.accounts");
    assert_eq!((t["conflicts"].as_u64(), t["filtered_out"].as_u64()), (Some(11), Some(149)), "{t}");
    env.sql("DELETE FROM expected WHERE id BETWEEN 150 AND 160; INSERT INTO expected SELECT * FROM before_accident WHERE id BETWEEN 150 AND 160");
    assert_same_rows(&env, "accounts", "expected");
}

/// Issue 15, item 2: `--where` was applied to the live table too, so rows
/// whose status the accident changed looked deleted and were re-inserted
/// (duplicate keys at apply).
#[test]
fn where_filters_the_damaged_rows_never_the_live_table() {
    let Some(env) = setup(true) else { return };
    env.sql(
        "CREATE TABLE items (id int PRIMARY KEY, status text NOT NULL, note text); \
         INSERT INTO items SELECT g, CASE WHEN g <= 150 THEN 'active' ELSE 'archived' END, 'n' || g FROM generate_series(1, 300) g",
    );
    backed_up(&env, "CREATE TABLE intended AS SELECT * FROM items");
    let at = insert_lsn(&env);
    accident(&env, "UPDATE items SET status = 'archived' WHERE status = 'active'; DELETE FROM items WHERE id > 290");
    let until = insert_lsn(&env);
    env.sql("INSERT INTO items VALUES (301, 'active', 'later'); INSERT INTO intended VALUES (301, 'active', 'later')");
    env.archive_now();
    // Deleted archived rows are outside --where: they stay deleted.
    env.sql("DELETE FROM intended WHERE id BETWEEN 291 AND 300");

    let script = env.path("where.sql");
    let r = recover(&env, &script, &["--table", "items", "--at", &at, "--until", &until, "--where", "status = 'active'", "--apply"]);
    let t = table_report(&r, "public.items");
    let counts: Vec<u64> = ["updated", "deleted", "filtered_out", "repaired", "conflicts"].iter().map(|k| t[k].as_u64().expect("count")).collect();
    assert_eq!(counts, [150, 0, 10, 150, 0], "updated, deleted, filtered out, repaired, conflicts: {t}");
    assert_eq!(r["between"].as_array().map(Vec::len), Some(1), "one transaction between --at and --until: {r}");
    assert!(!std::fs::read_to_string(&script).expect("script").contains("INSERT INTO"), "rows that still exist are not re-inserted");
    assert_same_rows(&env, "items", "intended");
}

/// Issue 15, items 3, 5 and 7: a column named `t` (the old query's table
/// alias) hid every change; json lost key order and duplicate keys, arrays
/// their bounds, jsonb `null` became SQL NULL; an identity key made the
/// UPDATE fail.
#[test]
fn every_type_comes_back_exactly_and_a_column_named_t_works() {
    let Some(env) = setup(true) else { return };
    env.sql(
        r#"CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 50);
        CREATE TABLE odd (
            id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            t text, "select" int, "Mixed ""Case""" text,
            j json, jb jsonb, arr int[], grid text[], b bytea, num numeric, f float8,
            ts timestamptz, iv interval, e mood, d short_text, r int4range, u uuid, ip inet, p point, flag boolean, day date, local timestamp,
            doubled int GENERATED ALWAYS AS ("select" * 2) STORED);
        INSERT INTO odd (t, "select", "Mixed ""Case""", j, jb, arr, grid, b, num, f, ts, iv, e, d, r, u, ip, p, flag, day, local)
        SELECT CASE g % 6 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'it''s "quoted"\nsecond line\ttab \\ backslash' WHEN 3 THEN 'unicode é ✓ 日本' ELSE 'plain ' || g END,
               g, CASE WHEN g % 2 = 0 THEN 'x' END,
               (ARRAY['{"b":1,"a":2,"a":3}', '[1, 2.50, "x"]', 'null', '  {"spaced" :  true}'])[1 + g % 4]::json,
               CASE g % 4 WHEN 0 THEN 'null'::jsonb WHEN 1 THEN NULL ELSE jsonb_build_object('k', g, 'nested', jsonb_build_array(1, 'two', NULL)) END,
               (ARRAY['[0:2]={7,8,9}', '{}', '{1,NULL,3}', '[-5:-5]={42}'])[1 + g % 4]::int[],
               (ARRAY['{{a,b},{"c d","e\"f"}}', '{NULL}', '{"",","}'])[1 + g % 3]::text[],
               decode(lpad(to_hex(g * 7919), 8, '0') || '00ff', 'hex'),
               (ARRAY['NaN', '1.10', '-0.000001', '123456789012345678901234567890.123'])[1 + g % 4]::numeric,
               (ARRAY['Infinity', '-0', '0.1', '1e-300', '-Infinity'])[1 + g % 5]::float8,
               (ARRAY['2026-03-29 01:30:00.123456+01', 'infinity', '-infinity', '1999-12-31 23:59:59+14'])[1 + g % 4]::timestamptz,
               make_interval(years => g % 3, months => -g % 5, days => g, secs => g * 1.000001),
               (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood, 'd' || g,
               (ARRAY['[1,5)', 'empty', '(,7]'])[1 + g % 3]::int4range,
               md5(g::text)::uuid, ('10.0.' || g % 256 || '.1/24')::inet, point(g / 3.0, -g),
               g % 2 = 0, date '2000-02-29' + g, timestamp '2026-01-01 00:00:00.5' + g * interval '1 hour'
        FROM generate_series(1, 60) g"#,
    );
    backed_up(&env, "CREATE TABLE intended AS SELECT * FROM odd");
    let at = insert_lsn(&env);
    accident(
        &env,
        r#"UPDATE odd SET t = 'x', "select" = 0, "Mixed ""Case""" = 'y', j = '{}', jb = '{}', arr = '{1}', grid = '{z}', b = '\x00',
               num = 0, f = 0, ts = now(), iv = '0', e = 'ok', d = 'same', r = '[0,1)', u = gen_random_uuid(), ip = '127.0.0.1', p = point(0, 0),
               flag = NOT flag, day = day + 1, local = now()
           WHERE id % 3 = 0;
           DELETE FROM odd WHERE id % 3 = 1 AND id > 10"#,
    );
    let later = "INSERT INTO {t} (id, t, \"select\", j, jb) {o} VALUES (100, 'later', 5, '{\"later\": 1}', 'null')";
    env.sql(&later.replace("{t}", "odd").replace("{o}", "OVERRIDING SYSTEM VALUE"));
    env.sql(&later.replace("{t}", "intended").replace("{o}", ""));
    env.sql("UPDATE intended SET doubled = 10 WHERE id = 100");
    env.archive_now();

    let r = recover(&env, &env.path("odd.sql"), &["--table", "odd", "--at", &at, "--apply"]);
    let t = table_report(&r, "public.odd");
    assert_eq!((t["updated"].as_u64(), t["deleted"].as_u64(), t["repaired"].as_u64()), (Some(20), Some(16), Some(36)), "{t}");
    let not_compared: Vec<&str> = t["not_compared"].as_array().expect("notes").iter().map(|n| n["column"].as_str().expect("column")).collect();
    assert_eq!(not_compared, ["doubled"], "the generated column is the server's: {t}");
    assert_eq!(r["statements_skipped"], 0, "every guard matched its row: {r}");
    assert_same_rows(&env, "odd", "intended");
}

/// Issue 15, item 4: tables listed child first failed on the foreign key,
/// and a cascaded subtree of a self-referencing table was re-inserted in
/// key-text order (`[10]` before `[2]`).
#[test]
fn tables_given_child_first_are_put_back_parents_first_and_trees_in_tree_order() {
    let Some(env) = setup(true) else { return };
    env.sql(
        "CREATE TABLE parent (id int PRIMARY KEY, name text); \
         CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent ON DELETE CASCADE, note text); \
         CREATE TABLE memo (id int PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE); \
         CREATE TABLE tree (id int PRIMARY KEY, parent_id int REFERENCES tree ON DELETE CASCADE, label text); \
         INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 20) g; \
         INSERT INTO child SELECT g, 1 + g % 20, 'c' || g FROM generate_series(1, 100) g; \
         INSERT INTO memo VALUES (1, 1); \
         INSERT INTO tree VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, NULL, 'other'), (10, 2, 'b'), (11, 2, 'c'), (100, 10, 'd'), (101, 10, 'e'), (1000, 100, 'f'), (20, 3, 'g'), \
                                 (5, 1000, 'moved under f'), (4, 5, 'a child keyed below its parent')",
    );
    backed_up(&env, "CREATE TABLE parent_i AS SELECT * FROM parent; CREATE TABLE child_i AS SELECT * FROM child; CREATE TABLE tree_i AS SELECT * FROM tree");
    let at = insert_lsn(&env);
    accident(&env, "DELETE FROM parent WHERE id <= 5; DELETE FROM tree WHERE id = 2");
    env.sql("INSERT INTO child VALUES (500, 10, 'later'); INSERT INTO child_i VALUES (500, 10, 'later')");
    env.archive_now();

    let r = recover(&env, &env.path("fk.sql"), &["--table", "child", "--table", "tree", "--table", "parent", "--at", &at, "--apply"]);
    assert_eq!(table_report(&r, "public.parent")["repaired"], 5, "{r}");
    assert_eq!(table_report(&r, "public.child")["repaired"], 25, "{r}");
    assert_eq!(table_report(&r, "public.tree")["repaired"], 8, "{r}");
    assert!(r["notes"].as_array().expect("notes").iter().any(|n| n.as_str().is_some_and(|n| n.contains("public.memo") && n.contains("CASCADE"))), "the unlisted cascade is named: {r}");
    assert_same_rows(&env, "parent", "parent_i");
    assert_same_rows(&env, "child", "child_i");
    assert_same_rows(&env, "tree", "tree_i");
}

/// Issue 15, item 6: a column added after `--at` made every row look
/// changed, and the apply failed (NOT NULL) or wiped it.
#[test]
fn a_column_added_after_the_accident_is_not_compared_and_keeps_its_values() {
    let Some(env) = setup(true) else { return };
    env.sql(
        "CREATE TABLE visits (id int PRIMARY KEY, val text, legacy text); \
         INSERT INTO visits SELECT g, 'v' || g, 'old' FROM generate_series(1, 50) g",
    );
    backed_up(&env, "CREATE TABLE intended AS SELECT * FROM visits");
    // --at as the README writes it: a local time, to the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let at = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    accident(&env, "DELETE FROM visits WHERE id <= 10; UPDATE visits SET val = 'oops' WHERE id BETWEEN 11 AND 20");
    for later in ["ALTER TABLE {t} ADD COLUMN extra int NOT NULL DEFAULT 7", "ALTER TABLE {t} DROP COLUMN legacy", "UPDATE {t} SET extra = 99 WHERE id BETWEEN 15 AND 30"] {
        env.sql(&later.replace("{t}", "visits"));
        env.sql(&later.replace("{t}", "intended"));
    }
    env.archive_now();

    let r = recover(&env, &env.path("drift.sql"), &["--table", "visits", "--at", &at, "--apply"]);
    let t = table_report(&r, "public.visits");
    assert_eq!((t["repaired"].as_u64(), t["conflicts"].as_u64(), t["untouched"].as_u64()), (Some(20), Some(0), Some(30)), "{t}");
    let notes: Vec<(&str, &str)> = t["not_compared"].as_array().expect("notes").iter().map(|n| (n["column"].as_str().expect("c"), n["reason"].as_str().expect("r"))).collect();
    assert!(notes.iter().any(|(c, r)| *c == "extra" && r.contains("added since")), "{notes:?}");
    assert!(notes.iter().any(|(c, r)| *c == "legacy" && r.contains("dropped since")), "{notes:?}");
    assert_same_rows(&env, "visits", "intended");
}

/// Issue 15, item 8: `SET id = id + 1000` was undone by re-inserting the
/// old keys and leaving the new ones: every row twice.
#[test]
fn an_update_that_changed_primary_keys_is_undone_as_one_update() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE cases (id int PRIMARY KEY, label text); INSERT INTO cases SELECT g, 'case ' || g FROM generate_series(1, 100) g");
    backed_up(&env, "CREATE TABLE intended AS SELECT * FROM cases");
    let at = insert_lsn(&env);
    accident(&env, "UPDATE cases SET id = id + 1000 WHERE id <= 20");
    env.sql("INSERT INTO cases VALUES (5000, 'later'); INSERT INTO intended VALUES (5000, 'later')");
    env.archive_now();

    let script = env.path("keys.sql");
    let r = recover(&env, &script, &["--table", "cases", "--at", &at, "--apply"]);
    let t = table_report(&r, "public.cases");
    let counts: Vec<u64> = ["keys_changed", "deleted", "inserted", "repaired"].iter().map(|k| t[k].as_u64().expect("count")).collect();
    assert_eq!(counts, [20, 0, 0, 20], "keys changed, deleted, inserted, repaired: {t}");
    let text = std::fs::read_to_string(&script).expect("script");
    assert!(!text.contains("INSERT INTO") && !text.contains("DELETE FROM"), "a key change is put back by UPDATE");
    assert_same_rows(&env, "cases", "intended");
}

/// Issue 13, item 1: a table without a primary key is refused in one line
/// before any restore, and so is a predicate that does not parse.
#[test]
fn a_table_without_a_primary_key_is_refused_before_anything_is_restored() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE loose (a int, b text); CREATE TABLE keyed (id int PRIMARY KEY)");
    backed_up(&env, "SELECT 1");
    let script = env.path("never.sql");
    for (args, needle) in [
        (vec!["--table", "loose"], "no primary key"),
        (vec!["--table", "keyed", "--where", "no_such_column = 1"], "--where"),
        (vec!["--table", "missing"], "does not exist"),
    ] {
        let mut a = vec!["recover-rows", COMPONENT, "--at", "latest", "--script", script.to_str().expect("utf8")];
        a.extend(args);
        let out = env.reprise(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{a:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(!script.exists(), "nothing is written for bad input");
    }
}
