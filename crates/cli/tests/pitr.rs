//! Point-in-time restore checked to the commit, not to the second.
//!
//! A commit ledger: one transaction per row, a few milliseconds apart, a
//! WAL switch and a restore point among them. After the run, each row's
//! commit record is looked up with PostgreSQL's own tools — its LSN with
//! `pg_waldump`, its commit time with `pg_xact_commit_timestamp` — and
//! restores are aimed at points strictly between two adjacent commits and
//! exactly on one. Each restore must hold exactly the rows committed up to
//! that point: an inclusive/exclusive mistake, a time rounded or shifted
//! by a zone, or a stop one record early or late changes the row set.

use std::collections::HashMap;
use std::time::Duration;

mod common;
use common::pg::{COMPONENT, Env, restore_started, setup_with};

/// Rows of the ledger in a restored cluster.
fn ledger(c: &reprise_postgres::cluster::Cluster) -> Vec<i32> {
    let mut client = c.connect("postgres").expect("connect");
    client.query("SELECT n FROM ledger ORDER BY n", &[]).expect("ledger").iter().map(|r| r.get(0)).collect()
}

/// Commit record LSN of each transaction, from pg_waldump on the server's
/// own WAL directory.
fn commit_lsns(env: &Env, from: &str) -> HashMap<u32, String> {
    let out = env
        .bin
        .command("pg_waldump")
        .expect("pg_waldump")
        .arg("-p")
        .arg(env.cluster().data_dir.join("pg_wal"))
        .args(["-s", from, "-r", "Transaction"])
        .output()
        .expect("run pg_waldump");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = HashMap::new();
    for line in text.lines().filter(|l| l.contains("desc: COMMIT ")) {
        let after = |key: &str| line.split(key).nth(1).and_then(|s| s.split(',').next()).map(str::trim).expect("field");
        map.insert(after("tx:").parse().expect("xid"), after("lsn:").to_owned());
    }
    map
}

fn lsn_plus_one(lsn: &str) -> String {
    let (hi, lo) = lsn.split_once('/').expect("lsn");
    let v = (u64::from_str_radix(hi, 16).expect("hex") << 32 | u64::from_str_radix(lo, 16).expect("hex")) + 1;
    format!("{:X}/{:X}", v >> 32, v & 0xFFFF_FFFF)
}

#[test]
fn pitr_stops_exactly_between_two_adjacent_commits() {
    let Some(env) = setup_with(true, &[("track_commit_timestamp", "on"), ("wal_keep_size", "1GB")]) else { return };
    env.sql("CREATE TABLE ledger (n int PRIMARY KEY)");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    let start = env.one("SELECT pg_current_wal_insert_lsn()::text");
    let mut client = env.client("postgres");
    let mut xids = Vec::new();
    for n in 1..=30i32 {
        let mut tx = client.transaction().expect("begin");
        let xid: i64 = tx.query_one("SELECT txid_current()", &[]).expect("xid").get(0);
        tx.execute("INSERT INTO ledger VALUES ($1)", &[&n]).expect("insert");
        tx.commit().expect("commit");
        xids.push(xid as u32);
        if n == 10 {
            // Commit 10 is the last record of its segment before the switch.
            client.batch_execute("SELECT pg_switch_wal()").expect("switch");
        }
        if n == 20 {
            client.batch_execute("SELECT pg_create_restore_point('after_20')").expect("restore point");
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    drop(client);
    env.archive_now();

    let lsns = commit_lsns(&env, &start);
    let lsn = |n: usize| lsns.get(&xids[n - 1]).unwrap_or_else(|| panic!("commit of row {n} (xid {}) not in pg_waldump's output", xids[n - 1])).clone();
    let mut times: Vec<jiff::Timestamp> = Vec::new();
    for xid in &xids {
        let t = env.one(&format!("SELECT to_char(pg_xact_commit_timestamp('{xid}'::xid) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"));
        times.push(t.parse().expect("commit time"));
    }
    let time = |n: usize| times[n - 1];
    let us = jiff::SignedDuration::from_micros(1);
    let text = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let midpoint = |a: jiff::Timestamp, b: jiff::Timestamp| a + jiff::SignedDuration::from_micros((b.as_microsecond() - a.as_microsecond()) / 2);
    assert!(time(13).as_microsecond() - time(12).as_microsecond() >= 2, "adjacent commits share a microsecond");

    let checks: Vec<(String, String, usize)> = vec![
        ("on commit 5's time (inclusive)".into(), text(time(5)), 5),
        ("a microsecond before commit 5".into(), text(time(5) - us), 4),
        ("between commits 12 and 13".into(), text(midpoint(time(12), time(13))), 12),
        ("on commit 20's record (inclusive)".into(), lsn(20), 20),
        ("just past commit 20's record".into(), lsn_plus_one(&lsn(20)), 20),
        ("just past commit 10, before the WAL switch".into(), lsn_plus_one(&lsn(10)), 10),
        ("restore point after commit 20".into(), "name:after_20".into(), 20),
        ("latest".into(), "latest".into(), 30),
    ];
    for (i, (what, target, upto)) in checks.iter().enumerate() {
        let to = env.path(&format!("at-{i}"));
        let (c, out) = restore_started(&env, target, &to);
        let got = ledger(&c);
        let want: Vec<i32> = (1..=*upto as i32).collect();
        assert_eq!(got, want, "{what} (--at {target}): restored rows 1..={}, expected 1..={upto} ({out})", got.last().copied().unwrap_or(0));
        drop(c);
        let _ = std::fs::remove_dir_all(&to);
    }
}
