//! What the evidence ledger costs, measured in process (bench/ledger.sh runs
//! it and writes the report; docs/BENCHMARKS.md section 11).
//!
//! ```text
//! ledger-bench no-change DATA WORK REPS   # a no-change backup of DATA, then one append, REPS times
//! ledger-bench appends WORK COUNT         # COUNT appends (witnessed), then verify
//! ```
//!
//! Both print one JSON document on stdout. Every timed step also reports how
//! busy the machine was meanwhile with work other than this process
//! (`/proc/stat` busy time minus this process's CPU time), because the
//! standard machine is shared: a figure taken while others ran is marked.
//!
//! The append is timed the way a command records its entry
//! (`crates/cli/src/commands/ledger.rs::record`): open the witness, build
//! the ledger, append; the backup the way `reprise backup --path` runs it,
//! with the files cache and the parent snapshot, once the repository is
//! open (opening, an Argon2id run, is left out: it would only make the
//! append's share look smaller).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reprise_engine::Repository;
use reprise_engine::backends::{Backend, LocalBackend};
use reprise_engine::backup::{BackupOptions, backup};
use reprise_engine::cache::FilesCache;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::KdfParams;
use reprise_ledger::{Entry, Ledger, Operation, Witness, repository_keys};
use reprise_source_files::{FilesOptions, FilesSource};

const USAGE: &str = "usage: ledger-bench no-change DATA WORK REPS | ledger-bench appends WORK COUNT";

/// Busy jiffies of the whole machine, and this process's CPU time.
struct Load {
    busy: u64,
    own: Duration,
    at: Instant,
}

impl Load {
    fn now() -> Load {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
        let busy = cpu.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
        let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).expect("getrusage");
        let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
        Load { busy, own: tv(usage.user_time()) + tv(usage.system_time()), at: Instant::now() }
    }

    /// The share of the machine others used since `self` (0..1).
    fn others_since(&self) -> f64 {
        let now = Load::now();
        let ticks = 100.0; // USER_HZ
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
        let busy = (now.busy - self.busy) as f64 / ticks;
        let own = now.own.saturating_sub(self.own).as_secs_f64();
        let wall = now.at.duration_since(self.at).as_secs_f64();
        ((busy - own) / (wall * cores)).clamp(0.0, 1.0)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn open_repo(dir: &Path) -> Arc<Repository> {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    Arc::new(Repository::init(backend, b"bench", kdf, ChunkerParams::default()).expect("init the repository"))
}

fn witness(dir: &Path) -> Witness {
    std::fs::create_dir_all(dir).expect("witness folder");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir));
    Witness::init(Arc::clone(&backend)).expect("witness-init");
    Witness::open(backend).expect("open the witness")
}

/// Apparent bytes and allocated bytes (`du`) of every file below `dir`.
fn sizes(dir: &Path) -> (u64, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut files, mut apparent, mut allocated) = (0, 0, 0);
    for e in walkdir(dir) {
        let md = std::fs::symlink_metadata(&e).expect("stat");
        if md.is_file() {
            files += 1;
            apparent += md.len();
            allocated += md.blocks() * 512;
        }
    }
    (files, apparent, allocated)
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn no_change(data: &Path, work: &Path, repetitions: usize) -> serde_json::Value {
    let repo = open_repo(&work.join("repo"));
    let witness_dir = work.join("witness");
    witness(&witness_dir);
    let cache = work.join("cache");
    let paths = vec![data.to_path_buf()];
    let run_backup = || {
        let source = FilesSource::new(&paths, &FilesOptions::default()).expect("the dataset");
        let mut opts = BackupOptions::new("docs", "files");
        opts.paths = vec![std::os::unix::ffi::OsStrExt::as_bytes(data.as_os_str()).to_vec()];
        opts.files_cache = Some(FilesCache::path_for(&cache, repo.id(), &opts.host, "docs"));
        opts.parent = repo.snapshots().expect("snapshots").0.into_iter().next_back().map(|s| s.id);
        let progress: Arc<dyn reprise_engine::Progress> = Arc::new(reprise_engine::NoProgress);
        backup(&repo, source, &opts, &progress).expect("backup")
    };
    let first = Instant::now();
    let outcome = run_backup();
    let first = first.elapsed().as_secs_f64();
    let (mut backups, mut appends, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repetitions {
        let load = Load::now();
        let t = Instant::now();
        let o = run_backup();
        backups.push(t.elapsed().as_secs_f64());
        assert_eq!(o.header.summary.files_read, 0, "a no-change backup reads no file");
        let t = Instant::now();
        let w = Witness::open(Arc::new(LocalBackend::new(&witness_dir))).expect("witness");
        let l = Ledger::new(&repo, repository_keys(&repo).unwrap()).with_witness(w).with_hint_dir(cache.join("ledger"));
        let entry = Entry::new(Operation::Backup).component("docs").snapshot(o.id).count("files", o.header.summary.files).size("bytes", o.header.summary.bytes);
        let receipt = l.append(&entry).expect("append");
        appends.push(t.elapsed().as_secs_f64());
        assert_eq!(receipt.witness, reprise_ledger::WitnessStatus::Witnessed);
        others.push(load.others_since());
    }
    let (b, a) = (median(&mut backups.clone()), median(&mut appends.clone()));
    serde_json::json!({
        "files": outcome.header.summary.files,
        "bytes": outcome.header.summary.bytes,
        "first_backup_s": first,
        "reps": repetitions,
        "no_change_backup_s": backups,
        "append_s": appends,
        "others_busy": others,
        "median_no_change_backup_s": b,
        "median_append_s": a,
        "append_share": a / b,
    })
}

fn appends(work: &Path, count: u64) -> serde_json::Value {
    let repo = open_repo(&work.join("repo"));
    let witness_dir = work.join("witness");
    let w = witness(&witness_dir);
    let l = Ledger::new(&repo, repository_keys(&repo).unwrap()).with_witness(w).with_hint_dir(work.join("cache/ledger"));
    let load = Load::now();
    let t = Instant::now();
    let mut slowest = 0f64;
    for i in 0..count {
        let one = Instant::now();
        let entry = Entry::new(Operation::Backup).component("docs").snapshot(reprise_engine::format::Id([(i % 251) as u8; 32])).count("files", 4000).size("bytes", 961_000_000);
        l.append(&entry).expect("append");
        slowest = slowest.max(one.elapsed().as_secs_f64());
    }
    let append_s = t.elapsed().as_secs_f64();
    let append_others = load.others_since();
    let load = Load::now();
    let t = Instant::now();
    let report = l.verify().expect("verify");
    let verify_s = t.elapsed().as_secs_f64();
    let verify_others = load.others_since();
    assert!(!report.tampered(), "the ledger verifies");
    assert_eq!(report.ledgers[0].size, count);
    assert_eq!(report.ledgers[0].witnessed_size, Some(count));
    let (records, r_apparent, r_allocated) = sizes(&work.join("repo/ledger"));
    let (checkpoints, w_apparent, w_allocated) = sizes(&witness_dir.join("ledger"));
    let t = Instant::now();
    let proof = l.proof(None, count / 2, Some(1)).expect("proof");
    let proof_s = t.elapsed().as_secs_f64();
    serde_json::json!({
        "count": count,
        "append_total_s": append_s,
        "append_mean_ms": append_s * 1000.0 / count as f64,
        "append_slowest_ms": slowest * 1000.0,
        "append_others_busy": append_others,
        "verify_s": verify_s,
        "verify_us_per_entry": verify_s * 1e6 / count as f64,
        "verify_others_busy": verify_others,
        "proof_s": proof_s,
        "proof_path_hashes": proof.inclusion.len(),
        "repository_objects": records,
        "repository_bytes_per_entry": r_apparent as f64 / count as f64,
        "repository_disk_bytes_per_entry": r_allocated as f64 / count as f64,
        "witness_objects": checkpoints,
        "witness_bytes_per_entry": w_apparent as f64 / count as f64,
        "witness_disk_bytes_per_entry": w_allocated as f64 / count as f64,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["no-change", data, work, reps] => no_change(Path::new(data), Path::new(work), reps.parse().expect("REPS")),
        ["appends", work, count] => appends(Path::new(work), count.parse().expect("COUNT")),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    ExitCode::SUCCESS
}
