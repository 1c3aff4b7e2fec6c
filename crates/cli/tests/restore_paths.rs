//! Restore paths a user expects (issue 16), each against a real
//! PostgreSQL 15: a held base backup restored by its snapshot ID; WAL that
//! `forget` no longer keeps marked, deleted by `prune` after the grace
//! period, and the point-in-time windows that closes said beforehand; a
//! logical dump loaded into a database the restore creates, everything
//! checked before a file is written; one table restored with its keys,
//! indexes, sequence and trigger into a database that has nothing else.

use std::path::Path;
use std::time::Duration;

mod common;
use common::pg::{COMPONENT, Env, assert_same_dump, cluster_of, dump_with, setup, walk};
use reprise_postgres::cluster::Cluster;

fn markers(c: &Cluster) -> Vec<i32> {
    let mut client = c.connect("postgres").expect("connect");
    client.query("SELECT n FROM markers ORDER BY n", &[]).expect("markers").iter().map(|r| r.get(0)).collect()
}

/// The server's clock now, in UTC, to the microsecond.
fn server_now(env: &Env) -> String {
    env.one("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
}

/// A commit, then the time just after it, then a pause: a restore to that
/// time holds this commit and none after.
fn commit_then_time(env: &Env, n: i32) -> String {
    env.sql(&format!("INSERT INTO markers VALUES ({n})"));
    let t = server_now(env);
    std::thread::sleep(Duration::from_millis(30));
    t
}

fn newest_snapshot(env: &Env) -> serde_json::Value {
    env.json(&["snapshots"]).as_array().expect("list").last().expect("snapshot").clone()
}

fn label(b: &serde_json::Value, k: &str) -> String {
    b["labels"][format!("pg.{k}")].as_str().unwrap_or_else(|| panic!("{k} in {b}")).to_owned()
}

fn ts(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str().unwrap_or_else(|| panic!("a time: {v}")).parse().expect("timestamp")
}

/// `restore SNAPSHOT --start --keep-running` with more arguments.
fn restore_id(env: &Env, id: &str, to: &Path, extra: &[&str]) -> (Cluster, serde_json::Value) {
    let mut args = vec!["restore", id, "--to", to.to_str().expect("utf8"), "--start", "--keep-running"];
    args.extend_from_slice(extra);
    let out = env.json(&args);
    (cluster_of(env, to, &out), out)
}

/// Runs a command that must be refused: exit 2, one line, nothing written.
#[track_caller]
fn refused(env: &Env, args: &[&str], to: &Path, says: &[&str]) -> String {
    let out = env.reprise(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: '{s}' not in: {err}");
    }
    assert!(!to.exists(), "{args:?} was refused after writing {}", to.display());
    err
}

/// Bug (issue 16, item 1): `reprise restore e188036f --at immediate --to
/// DIR --start` of a held base backup exited 2 ("--at … apply to
/// PostgreSQL components"). A base backup's ID restores that base backup:
/// to its own end by default, to any point its archived WAL reaches with
/// --at (even `latest`, which by component would pick a newer base
/// backup), and a target outside that range is refused naming the range.
#[test]
fn a_held_base_backup_restores_by_its_id_to_its_end_or_within_its_wal() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE markers (n int PRIMARY KEY); INSERT INTO markers VALUES (1)");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    let held = newest_snapshot(&env);
    let id = held["id"].as_str().expect("id")[..8].to_owned();
    env.ok(&["hold", "add", &id, "--reason", "litigation 2026-117"]);
    let after_2 = commit_then_time(&env, 2);
    env.sql("INSERT INTO markers VALUES (3)");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    env.sql("INSERT INTO markers VALUES (4)");
    env.archive_now();

    // The command: its own end, consistent, and the range it can reach.
    let (c, out) = restore_id(&env, &id, &env.path("end"), &["--at", "immediate"]);
    assert_eq!(markers(&c), [1], "{out}");
    assert_eq!(out["base_backup"], held["id"], "{out}");
    assert_eq!(out["target"], "immediate", "{out}");
    let reach = &out["reach"];
    assert_eq!(ts(&reach["from_time"]), label(&held, "stop_time").parse::<jiff::Timestamp>().expect("stop_time"), "{out}");
    assert!(ts(&reach["to_time"]) > ts(&reach["from_time"]), "the WAL archived after it reaches further: {out}");
    drop(c);
    // Within its WAL: a time between two commits, and the latest state
    // (replayed from this base backup, not the newer one).
    let (c, out) = restore_id(&env, &id, &env.path("between"), &["--at", &after_2]);
    assert_eq!(markers(&c), [1, 2], "{out}");
    drop(c);
    let (c, out) = restore_id(&env, &id, &env.path("latest"), &["--at", "latest"]);
    assert_eq!(markers(&c), [1, 2, 3, 4], "{out}");
    assert_eq!(out["base_backup"], held["id"], "{out}");
    drop(c);
    // By its ID alone, the same end; the text says what it can reach.
    let text = env.ok(&["restore", &id, "--to", env.path("text").to_str().expect("utf8")]);
    assert!(text.contains("this base backup restores to any point from") && text.contains("restored to immediate"), "{text}");

    // Outside its range: refused, naming the range, nothing written.
    let to = env.path("refused");
    let t = to.to_str().expect("utf8");
    refused(&env, &["restore", &id, "--at", "2000-01-01T00:00:00Z", "--to", t], &to, &["cannot reach", "the backup's end) to", "choose --at within that range"]);
    refused(&env, &["restore", &id, "--at", "2099-01-01T00:00:00Z", "--to", t, "--start"], &to, &["cannot reach", "choose --at within that range"]);
    refused(&env, &["restore", &id, "--into", "host=/nowhere", "--to", t], &to, &["this is a physical base backup"]);
}

/// Archived WAL segment names of the component, from the repository folder.
fn archived_segments(env: &Env) -> Vec<String> {
    let mut out: Vec<String> = walk(&env.repo.join("wal").join(COMPONENT))
        .into_iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    out.sort();
    out
}

fn set_retention(env: &Env, retention: &str) {
    let plan = std::fs::read_to_string(&env.plan).expect("plan");
    let plan = match plan.find("\n[components.db.objectives]") {
        Some(i) => plan[..i].to_owned(),
        None => plan,
    };
    std::fs::write(&env.plan, format!("{plan}\n[components.db.objectives]\nretention = {retention}\n")).expect("plan");
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("a list: {v}")).iter().map(|s| s.as_str().expect("name").to_owned()).collect()
}

/// Bug (issue 16, item 2): with the first base backup on hold and
/// `keep_last = 1`, `forget` deleted the WAL between the base backups at
/// once, without a word, and a restore to a time between them then failed
/// with a gap. Now: `forget --dry-run` and `forget` say which restores
/// will no longer be possible; `forget` only marks the WAL; `prune` keeps
/// it through the grace period; a second `forget` with a policy that keeps
/// it undoes the marks; with the grace over, `prune` deletes it and the
/// ledger counts both.
#[test]
fn forget_marks_wal_says_which_restores_it_closes_and_can_be_undone() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE markers (n int PRIMARY KEY); INSERT INTO markers VALUES (1)");
    env.archive_now();
    let mut bases = Vec::new();
    let mut between = Vec::new();
    for round in 0..3 {
        env.ok(&["backup", COMPONENT]);
        bases.push(newest_snapshot(&env));
        between.push(commit_then_time(&env, 10 * (round + 1)));
        env.archive_now();
        env.sql(&format!("INSERT INTO markers VALUES ({})", 10 * (round + 1) + 1));
        env.archive_now();
    }
    let held = bases[0]["id"].as_str().expect("id")[..8].to_owned();
    env.ok(&["hold", "add", &held, "--reason", "litigation 2026-117"]);
    set_retention(&env, "{ keep_last = 1 }");
    let before = archived_segments(&env);

    let dry = env.json(&["forget", "--dry-run"]);
    let wal = &dry[0]["wal"];
    let marked = names(&wal["marked_files"]);
    assert!(!marked.is_empty(), "{dry}");
    // The window that closes: from the end of the held backup's own WAL to
    // the end of the newest base backup, which covers both commit times
    // between the base backups.
    let closes = wal["closes"].as_array().expect("closes");
    assert_eq!(closes.len(), 1, "{dry}");
    let (from, to) = (ts(&closes[0]["from"]), ts(&closes[0]["to"]));
    let stop = |b: &serde_json::Value| label(b, "stop_time").parse::<jiff::Timestamp>().expect("stop_time");
    assert!(from >= stop(&bases[0]) && from < between[0].parse().expect("t"), "{dry}");
    assert_eq!(to, stop(&bases[2]), "{dry}");
    let text = env.ok(&["forget", "--dry-run"]);
    assert!(text.contains("will no longer be possible"), "{text}");
    eprintln!("forget --dry-run said:\n{}", text.lines().filter(|l| l.contains("WAL")).collect::<Vec<_>>().join("\n"));
    assert_eq!(archived_segments(&env), before, "a dry run marks nothing");

    // The real run marks, deletes nothing, and says the same.
    let out = env.json(&["forget"]);
    assert_eq!(out[0]["removed"], 1, "the middle base backup goes: {out}");
    assert_eq!(names(&out[0]["wal"]["marked_files"]), marked, "{out}");
    assert_eq!(out[0]["wal"]["newly_marked"].as_u64(), Some(marked.len() as u64), "{out}");
    assert_eq!(out[0]["wal"]["closes"], dry[0]["wal"]["closes"], "{out}");
    assert_eq!(archived_segments(&env), before, "forget marks, prune deletes");
    let repo = env.repo.to_str().expect("utf8");
    let pruned = env.json(&["--repo", repo, "prune", "--grace", "0", "--max-unused", "0"]);
    assert_eq!(pruned["wal"]["pending_files"].as_u64(), Some(marked.len() as u64), "{pruned}");
    assert_eq!(pruned["wal"]["deleted_files"], 0, "{pruned}");
    assert_eq!(archived_segments(&env), before, "within the grace period, prune deletes no WAL");
    // Within the grace, the held base backup still reaches between the others.
    let (c, _) = restore_id(&env, &held, &env.path("within-grace"), &["--at", &between[1]]);
    assert_eq!(markers(&c), [1, 10, 11, 20], "restore to a time between base backups 2 and 3");
    drop(c);

    // The undo: a policy that keeps the WAL, applied again.
    set_retention(&env, "{ keep_last = 1, keep_within = \"30d\" }");
    // WAL from before the held base backup stays marked: nothing needs it.
    let (start, stop_wal) = (label(&bases[0], "start_wal"), label(&bases[0], "stop_wal"));
    let (older, undone): (Vec<String>, Vec<String>) = marked.iter().cloned().partition(|s| s[..24] < *start);
    assert!(!undone.is_empty() && !older.is_empty(), "{marked:?}");
    let undo = env.json(&["forget"]);
    assert_eq!(names(&undo[0]["wal"]["unmarked_files"]), undone, "{undo}");
    assert_eq!(names(&undo[0]["wal"]["marked_files"]), older, "{undo}");
    assert!(!undo[0]["wal"]["reopens"].as_array().expect("reopens").is_empty(), "{undo}");
    let pruned = env.json(&["--repo", repo, "prune", "--grace", "0", "--max-unused", "0"]);
    assert_eq!(pruned["wal"]["pending_files"].as_u64(), Some(older.len() as u64), "only the older WAL stays marked: {pruned}");
    assert_eq!(archived_segments(&env), before);

    // Forget again with no grace: the next prune deletes, the held base
    // backup keeps its own range and can no longer reach between.
    set_retention(&env, "{ keep_last = 1 }");
    let out = env.json(&["forget", "--grace", "0"]);
    assert_eq!(names(&out[0]["wal"]["marked_files"]), marked, "{out}");
    // The WAL marked again is deleted; the older WAL keeps the 24 hours its
    // first mark gave it (rewriting a mark never shortens its grace).
    let pruned = env.json(&["--repo", repo, "prune", "--grace", "0", "--max-unused", "0"]);
    assert_eq!(pruned["wal"]["deleted_files"].as_u64(), Some(undone.len() as u64), "{pruned}");
    assert_eq!(pruned["wal"]["pending_files"].as_u64(), Some(older.len() as u64), "{pruned}");
    let after = archived_segments(&env);
    for s in &before {
        assert_eq!(after.contains(s), !undone.contains(s), "{s}");
    }
    assert!(after.iter().any(|s| *s >= start && *s <= stop_wal), "the held backup's own range stays");
    let to = env.path("after-prune");
    refused(&env, &["restore", &held, "--at", &between[1], "--to", to.to_str().expect("utf8")], &to, &["cannot reach"]);
    let (c, _) = restore_id(&env, &held, &env.path("held-end"), &[]);
    assert_eq!(markers(&c), [1], "the held base backup still restores to its end");
    drop(c);

    // The ledger counts the marks and the deletion.
    let entries = env.json(&["ledger", "show"])["entries"].as_array().expect("entries").clone();
    let counts = |op: &str, key: &str| -> Vec<u64> { entries.iter().filter(|e| e["operation"] == op).filter_map(|e| e["counts"][key].as_u64()).collect() };
    let (n, u) = (marked.len() as u64, undone.len() as u64);
    assert_eq!(counts("forget", "wal_marked"), [n, 0, u], "{entries:?}");
    assert_eq!(counts("forget", "wal_unmarked"), [0, u, 0]);
    assert_eq!(counts("prune", "wal_deleted"), [0, 0, u]);
}

/// Lines joined, each ended by a newline.
fn lines_of<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines.fold(String::new(), |acc, l| acc + l + "\n")
}

/// A logical component with an `app` database: `orders` has a primary
/// key, a unique constraint, a check, a default, an owned sequence past
/// its rows, an index, a trigger (with its function) and a foreign key to
/// `customers`; `refunds` has a foreign key to `orders`.
fn logical_env() -> Option<Env> {
    let env = setup(false)?;
    env.sql("CREATE DATABASE app");
    env.client("app")
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL); \
             INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 50) g; \
             CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL REFERENCES customers (id), ref text UNIQUE, \
               amount numeric(12,2) NOT NULL CHECK (amount >= 0), status text NOT NULL DEFAULT 'open', touched timestamptz); \
             INSERT INTO orders (customer, ref, amount) SELECT 1 + g % 50, 'R' || g, g * 1.5 FROM generate_series(1, 300) g; \
             SELECT setval('orders_id_seq', 1000); \
             CREATE INDEX orders_customer ON orders (customer, amount DESC); \
             CREATE FUNCTION orders_touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.touched := now(); RETURN NEW; END$$; \
             CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION orders_touch(); \
             COMMENT ON TABLE orders IS 'one row per order'; \
             CREATE TABLE refunds (id int PRIMARY KEY, order_id bigint REFERENCES orders (id)); \
             INSERT INTO refunds VALUES (1, 5);",
        )
        .expect("load");
    let plan = std::fs::read_to_string(&env.plan).expect("plan");
    let logical = plan
        .replace("type = \"postgres\"", "type = \"postgres\"\nmode = \"logical\"\ndatabases = [\"app\"]")
        .lines()
        .filter(|l| !l.starts_with("data_directory"))
        .fold(String::new(), |acc, l| acc + l + "\n");
    std::fs::write(&env.plan, logical).expect("plan");
    Some(env)
}

fn databases(env: &Env) -> Vec<String> {
    let mut c = env.client("postgres");
    c.query("SELECT datname::text FROM pg_database ORDER BY 1", &[]).expect("databases").iter().map(|r| r.get(0)).collect()
}

/// Bug (issue 16, item 3): `restore COMPONENT --into SERVER` loaded into a
/// database with the source's name and failed when it did not exist,
/// after writing the dump files to the target directory. Now the database
/// is created (under the dump's name, or `--database NEW`), and a server
/// that does not answer, a database the dump lacks or a target database
/// that is not empty are refused before anything is written.
#[test]
fn a_logical_restore_into_a_server_creates_the_database_and_checks_before_writing() {
    let Some(env) = logical_env() else { return };
    let before = dump_with(&env, env.cluster(), "app", &[]);
    let b = env.json(&["backup", COMPONENT]);
    let id = b["id"].as_str().expect("id")[..8].to_owned();
    let into = env.cluster().conn_string("postgres");
    let dbs = databases(&env);

    // Refused before writing: a server that does not answer, a database
    // the dump lacks (several named: the dump holds one), a target that
    // already has tables.
    let to = env.path("refused");
    let t = to.to_str().expect("utf8");
    refused(&env, &["restore", COMPONENT, "--to", t, "--into", "host=/nonexistent-socket-dir port=5999 user=postgres"], &to, &["cannot connect to PostgreSQL"]);
    refused(&env, &["restore", COMPONENT, "--to", t, "--into", &into, "--database", "app", "--table", "nope"], &to, &["no table 'nope'"]);
    refused(&env, &["restore", COMPONENT, "--to", t, "--into", &into], &to, &["database 'app' on the target server is not empty", "--database NEW"]);
    refused(&env, &["restore", COMPONENT, "--to", t, "--into", &into, "--database", "app", "--table", "orders"], &to, &["already exists in database 'app'"]);
    assert_eq!(databases(&env), dbs, "a refused restore creates no database");

    // Into a new database, by the component and by the snapshot's ID.
    let out = env.json(&["restore", COMPONENT, "--to", env.path("d1").to_str().expect("utf8"), "--into", &into, "--database", "app_copy"]);
    assert_eq!(out["loaded"], serde_json::json!(["app_copy"]), "{out}");
    assert_eq!(out["created"], serde_json::json!(["app_copy"]), "{out}");
    assert_same_dump("app restored as app_copy", &before, &dump_with(&env, env.cluster(), "app_copy", &[]));
    env.sql("DROP DATABASE app");
    let out = env.json(&["restore", &id, "--to", env.path("d2").to_str().expect("utf8"), "--into", &into]);
    assert_eq!(out["created"], serde_json::json!(["app"]), "{out}");
    assert_same_dump("app restored under its own name, by snapshot ID", &before, &dump_with(&env, env.cluster(), "app", &[]));
}

/// Bug (issue 16, item 4): `--table orders` restored the rows without the
/// primary key, indexes, foreign keys or sequence defaults. Into a
/// database that has the tables it references, `pg_dump -t orders` after
/// the restore is the one before, foreign key included; into a new empty
/// database, it is the one before without the foreign key to `customers`,
/// which the restore names as left out (with `refunds`'s key to it), and
/// the trigger's function comes along.
#[test]
fn one_table_comes_back_with_its_keys_indexes_sequence_and_trigger() {
    let Some(env) = logical_env() else { return };
    let orders = dump_with(&env, env.cluster(), "app", &["-t", "orders"]);
    let whole = dump_with(&env, env.cluster(), "app", &[]);
    env.json(&["backup", COMPONENT]);
    let into = env.cluster().conn_string("postgres");

    // Dropped from the live database (with refunds' key to it), restored.
    env.client("app").batch_execute("DROP TABLE orders CASCADE").expect("drop");
    let out = env.json(&["restore", COMPONENT, "--to", env.path("t1").to_str().expect("utf8"), "--into", &into, "--database", "app", "--table", "orders"]);
    assert_same_dump("orders into app", &orders, &dump_with(&env, env.cluster(), "app", &["-t", "orders"]));
    let left: Vec<String> = names(&out["left_out"]);
    assert_eq!(left.len(), 1, "{out}");
    assert!(left[0].contains("refunds_order_id_fkey") && left[0].contains("another table's"), "{out}");
    assert!(out["prerequisites"].as_array().expect("list").is_empty(), "the function is there: {out}");
    let mut app = env.client("app");
    app.batch_execute("ALTER TABLE refunds ADD CONSTRAINT refunds_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id)").expect("add back");
    assert_same_dump("the whole database once refunds' key is added back", &whole, &dump_with(&env, env.cluster(), "app", &[]));
    // The sequence went on from its value, the default and the trigger work.
    let row = app.query_one("INSERT INTO orders (customer, amount) VALUES (1, 2) RETURNING id, status", &[]).expect("insert");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(1)), (1001, "open".to_owned()));
    app.execute("UPDATE orders SET amount = 3 WHERE id = 1001", &[]).expect("update");
    let touched: Option<std::time::SystemTime> = app.query_one("SELECT touched FROM orders WHERE id = 1001", &[]).expect("touched").get(0);
    assert!(touched.is_some(), "the trigger ran");
    assert!(app.execute("INSERT INTO orders (customer, amount) VALUES (999, 1)", &[]).is_err(), "the foreign key to customers is enforced");
    drop(app);

    // Into a new database that has nothing else.
    let out = env.json(&["restore", COMPONENT, "--to", env.path("t2").to_str().expect("utf8"), "--into", &into, "--database", "scratch", "--table", "orders"]);
    assert_eq!(out["created"], serde_json::json!(["scratch"]), "{out}");
    let left = names(&out["left_out"]);
    assert!(left.iter().any(|l| l.contains("orders_customer_fkey") && l.contains("public.customers, which the target database lacks")), "{out}");
    assert_eq!(out["prerequisites"], serde_json::json!(["FUNCTION public.orders_touch()"]), "{out}");
    // pg_dump's block for the key: "--", "-- Name: …", "--", "", the two
    // lines of the statement, two blank lines.
    let without_fk: String = {
        let lines: Vec<&str> = orders.lines().collect();
        let name = lines.iter().position(|l| l.starts_with("-- Name: orders orders_customer_fkey;")).expect("the foreign key in the dump");
        lines_of(lines.iter().enumerate().filter(|(k, _)| !(name - 1..name + 7).contains(k)).map(|(_, l)| *l))
    };
    let got = dump_with(&env, env.cluster(), "scratch", &["-t", "orders"]);
    assert_same_dump("orders into a new database, without its key to customers", &without_fk, &got);
}
