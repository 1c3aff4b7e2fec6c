//! Command-line flags, as clap parses them. Nothing here is validated
//! beyond syntax: `context.rs` combines flags, environment and plan.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "reprise", version, about = "The continuity plan that runs: encrypted, deduplicated, write-once backups with measured restores.")]
#[command(after_help = "Exit codes: 0 ok, 1 error, 2 usage/invalid plan, 3 not found, 4 wrong passphrase or key, 5 permission denied, \
6 damaged data, 7 storage full, 8 backup incomplete, 9 storage unavailable (retry later), 10 busy (retry later), 12 plan lint warnings, 13 plan lint errors, 130 interrupted.")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Plan file [default: ./reprise.toml, then /etc/reprise/reprise.toml]
    #[arg(long, global = true, env = "REPRISE_PLAN", value_name = "FILE")]
    pub plan: Option<PathBuf>,

    /// Repository: a plan repository name, or a URL (a directory path)
    #[arg(short = 'r', long = "repo", global = true, env = "REPRISE_REPO", value_name = "NAME|URL")]
    pub repo: Option<String>,

    /// Read the passphrase from this file (first line). The passphrase is
    /// never accepted as an argument; REPRISE_PASSWORD also works.
    #[arg(long, global = true, env = "REPRISE_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Open the repository with a key file instead of a passphrase: a
    /// recovery key (reads everything) or a write credential (adds backups)
    #[arg(long = "key-file", visible_alias = "recovery-key", global = true, env = "REPRISE_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Directory for local caches [default: $XDG_CACHE_HOME/reprise]
    #[arg(long, global = true, env = "REPRISE_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Ledger witness: a second place every ledger checkpoint is written
    /// to, which the writing hosts cannot rewrite [default: ledger.witness
    /// in the plan]
    #[arg(long, global = true, env = "REPRISE_LEDGER_WITNESS", value_name = "URL")]
    pub witness: Option<String>,

    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More log output (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the embedded demonstration: back up, restore and verify sample data
    Demo(DemoArgs),
    /// Create a repository
    Init(InitArgs),
    /// Manage the keys of a repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Back up a plan component, paths, or standard input
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List the files of a snapshot
    Ls(LsArgs),
    /// Show what changed between two snapshots
    Diff(DiffArgs),
    /// Restore a snapshot (or part of it) into a directory
    Restore(RestoreArgs),
    /// Verify the repository's structure and, optionally, its data
    Check(CheckArgs),
    /// Show repository statistics
    Stats(StatsArgs),
    /// Work with the plan file
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Archive one WAL file (PostgreSQL's archive_command: `reprise wal-push COMPONENT %p`)
    WalPush(WalPushArgs),
    /// Fetch one WAL file (PostgreSQL's restore_command: `reprise wal-fetch COMPONENT %f %p`).
    /// Exits 1 when the file is not archived (end of recovery), 126 on any error (stops recovery)
    WalFetch(WalFetchArgs),
    /// Stream WAL from a PostgreSQL server into the repository (RPO of seconds; 0 with --synchronous)
    WalStream(WalStreamArgs),
    /// Recover deleted or changed rows of one table as they were at a time
    RecoverRows(RecoverRowsArgs),
    /// Show, per component, the recovery point achieved now and what can be restored
    Status(StatusArgs),
    /// Remove the snapshots the plan's retention policies no longer keep
    /// (legal holds and retain-until dates always win)
    Forget(ForgetArgs),
    /// Legal holds: snapshots that nothing may remove until the hold is lifted
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Copy snapshots, with the data and WAL they need, to a second
    /// repository that mirrors the first (3-2-1): only what it lacks and
    /// its retention keeps, every object verified
    Copy(CopyArgs),
    /// Delete data no snapshot needs, safely while backups run: packs are
    /// marked now and deleted by a later prune, after a grace period
    Prune(PruneArgs),
    /// Clear damage `check` reports, losing nothing still readable: the
    /// index, the config, key files, prune marks
    #[command(subcommand)]
    Repair(RepairCommand),
    /// The evidence ledger: a tamper-evident record of every sensitive
    /// operation, with signed checkpoints kept by a witness
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Restore drills: restore the plan's components into a scratch copy,
    /// validate, measure RTO and data loss, record the report
    #[command(subcommand)]
    Drill(DrillCommand),
}

#[derive(Subcommand, Debug)]
pub enum DrillCommand {
    /// Run a drill of the plan ([drills.NAME]): restore, validate, measure,
    /// remove the copy, store the record (exit 11 if it failed)
    Run {
        /// The drill's name in the plan
        name: String,
        /// Where the scratch copy goes [default: the drill's scratch, else
        /// the temporary folder]
        #[arg(long, value_name = "DIR")]
        scratch: Option<PathBuf>,
        /// Also write the report to this file (format from --format)
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Report format for --output: md, html, pdf or json
        #[arg(long, default_value = "md")]
        format: String,
        /// Report language: fr (default) or en
        #[arg(long, default_value = "fr")]
        lang: String,
    },
    /// List the stored drill records
    List {
        /// Only this drill's records
        name: Option<String>,
    },
    /// Render a stored drill record: its report, from what was stored
    Show {
        /// A record ID (or unique prefix), a drill name (its latest), or latest
        id: String,
        /// md, html, pdf or json (the stored record itself)
        #[arg(long, default_value = "md")]
        format: String,
        /// Report language: fr (default) or en
        #[arg(long, default_value = "fr")]
        lang: String,
        /// Write to this file (refuses to overwrite) [default: stdout; a
        /// PDF needs a file]
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The RTO and verdict of every run of one drill, oldest first
    History {
        /// The drill's name in the plan
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// List the recorded operations
    Show {
        /// Only from this entry position, time (RFC 3339 or a date) or
        /// duration back from now (e.g. 7d)
        #[arg(long, value_name = "POSITION|TIME|DURATION")]
        since: Option<String>,
        /// Only this ledger (an ID or unique prefix) [default: all]
        #[arg(long, value_name = "ID")]
        ledger: Option<String>,
    },
    /// Recompute every root, check every signature and every checkpoint,
    /// the witness's included; name what was altered, removed, reordered
    /// or forked (exit 6)
    Verify {
        /// Trust only this verifier key (NAME+ID+KEY, as verify prints it)
        /// [default: the repository's own]
        #[arg(long = "key", value_name = "VERIFIER_KEY")]
        keys: Vec<String>,
    },
    /// Export the proof that an entry is in the ledger, for an auditor to
    /// check offline
    Proof {
        /// The entry's position, as `ledger show` lists it (LEDGER:POSITION
        /// for a ledger copied from another site)
        entry: String,
        /// Also prove that the tree of this size (from an earlier audit) is
        /// a prefix of today's
        #[arg(long, value_name = "SIZE")]
        from_size: Option<u64>,
        /// Write the proof to this file (refuses to overwrite) [default: stdout]
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check an exported proof, offline (needs no repository)
    CheckProof {
        /// The proof, as `reprise ledger proof -o FILE` wrote it
        file: PathBuf,
        /// The verifier key to trust (NAME+ID+KEY) [default: the keys the
        /// proof lists, with a caution]
        #[arg(long = "key", value_name = "VERIFIER_KEY")]
        keys: Vec<String>,
    },
    /// Record a statement: a drill signed off, an incident declared (no
    /// patient data)
    Note {
        /// What to record (a statement, never patient data)
        text: String,
    },
    /// Make a location a ledger witness (run once, by the account that
    /// owns it)
    WitnessInit {
        /// A directory, s3://BUCKET/PREFIX or azure://ACCOUNT/CONTAINER/PREFIX
        url: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Index the packs from their own directories, then remove the index
    /// files that cannot be read (a full-access key; deletes)
    Index {
        /// Say what would be indexed and removed; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the config again when it cannot be read: from a copy of the
    /// repository (--from), else from the key and what is left of it
    Config {
        /// A copy of this repository (a plan repository name or a URL)
        /// whose config is taken, once its ID is checked
        #[arg(long, value_name = "NAME|URL")]
        from: Option<String>,
        /// Say what would be written; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove key files whose bytes were altered (they open nothing; the
    /// other keys are untouched)
    Keys {
        /// Say what would be removed; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove prune marks that cannot be read (safe: a mark only allows
    /// deletion; backups refuse to run while one is unreadable)
    Marks {
        /// Say what would be removed; change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Components to copy [default: every component whose repository has a copy]
    pub components: Vec<String>,
    /// Destination: a repository of the plan [default: every repository
    /// whose copy_of names the component's repository]
    #[arg(long = "to", value_name = "REPOSITORY")]
    pub to: Option<String>,
    /// Say what would be copied; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Transfers in flight [default: 8]
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Show what would be deleted, marked and repacked; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Time between marking a pack and deleting it: longer than your longest
    /// backup (e.g. 24h, 90m; 0 deletes at once: only when no backup can run).
    /// Recorded in the mark this run writes: a later prune deletes when the
    /// recorded period is over, whatever its own --grace
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub grace: String,
    /// Repack partly used packs until unused space is at most this
    /// percentage of used space
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    pub max_unused: f64,
    /// Repack at most this much per run (e.g. 10G, 500M)
    #[arg(long, value_name = "SIZE")]
    pub max_repack: Option<String>,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Components to apply their policy to [default: every component with a retention policy]
    pub components: Vec<String>,
    /// Show each snapshot with the rule that keeps it or why it would go; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// PostgreSQL: time between marking WAL for deletion and `prune`
    /// deleting it, to undo a mistaken forget (run forget again with a
    /// policy that keeps it); e.g. 24h, 90m, 0
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub grace: String,
}

#[derive(Subcommand, Debug)]
pub enum HoldCommand {
    /// Place a hold on a snapshot
    Add {
        /// Snapshot ID (or unique prefix)
        snapshot: String,
        /// Why (a case number, a request): recorded in the hold
        #[arg(long)]
        reason: String,
    },
    /// List the holds
    List,
    /// Lift a hold (needs a key allowed to delete)
    Remove {
        /// Hold ID (or unique prefix), as `hold list` shows it
        hold: String,
    },
}

#[derive(Args, Debug)]
pub struct WalPushArgs {
    /// The plan's PostgreSQL component the WAL belongs to
    pub component: String,
    /// Path of the WAL file (%p)
    pub path: PathBuf,
}

#[derive(Args, Debug)]
pub struct WalFetchArgs {
    /// The plan's PostgreSQL component the WAL belongs to
    pub component: String,
    /// File name asked for (%f)
    pub file: String,
    /// Where to write it (%p)
    pub destination: PathBuf,
    /// Spool folder for prefetched segments [default: DATA/pg_wal/reprise-spool]
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// Only take files from the spool, filled by a running `reprise restore --start`
    #[arg(long, requires = "spool")]
    pub spool_only: bool,
}

#[derive(Args, Debug)]
pub struct WalStreamArgs {
    /// The plan's PostgreSQL component to stream
    pub component: String,
    /// Store every received byte at once (commits grouped while a store is
    /// in flight); with the server's synchronous_standby_names =
    /// 'reprise_COMPONENT', a commit returns only once its WAL is in the
    /// repository (RPO 0)
    #[arg(long)]
    pub synchronous: bool,
    /// Local spool for received WAL not yet stored [default: CACHE/wal-stream/REPOSITORY-ID/COMPONENT]
    #[arg(long)]
    pub spool: Option<PathBuf>,
    /// Without --synchronous: seconds between stores of received WAL
    #[arg(long, default_value_t = 5)]
    pub partial_interval: u64,
    /// Stop after this many seconds [default: run until interrupted]
    #[arg(long)]
    pub duration: Option<u64>,
    /// Store what the spool holds beyond the repository, then exit; needs
    /// no server (a spool left behind by a stream that was killed)
    #[arg(long, conflicts_with_all = ["synchronous", "duration"])]
    pub upload_only: bool,
}

#[derive(Args, Debug)]
pub struct RecoverRowsArgs {
    /// The plan's PostgreSQL component (physical) holding the table
    pub component: String,
    /// Table (`schema.table` or `table`); repeat for a parent and the child
    /// tables a cascading delete emptied (any order: put back parents first)
    #[arg(long = "table", required = true)]
    pub tables: Vec<String>,
    /// Before the accident: a time, an LSN or name:RESTORE_POINT
    #[arg(long)]
    pub at: String,
    /// Right after the accident [default: right after the first transaction
    /// that changed the tables after --at, found in the archived WAL]
    #[arg(long)]
    pub until: Option<String>,
    /// Repair only the damaged rows matching this SQL predicate (on their
    /// version before the accident)
    #[arg(long = "where", value_name = "PREDICATE")]
    pub predicate: Option<String>,
    /// Rows the accident damaged and someone changed since: keep them as
    /// they are now, or put them back as they were before the accident
    #[arg(long, value_enum, default_value_t = ConflictChoiceArg::Keep)]
    pub conflicts: ConflictChoiceArg,
    /// Database holding the table [default: the component connection's]
    #[arg(long)]
    pub database: Option<String>,
    /// Apply the script in one transaction (otherwise only write it)
    #[arg(long)]
    pub apply: bool,
    /// Where to write the SQL script [default: ./recover-TABLE-TIME.sql]
    #[arg(long)]
    pub script: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictChoiceArg {
    Keep,
    Before,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only this component
    pub component: Option<String>,
}

#[derive(Args, Debug)]
pub struct KdfArgs {
    /// Argon2id memory in KiB for the new key [default: 65536]
    #[arg(long, value_name = "KIB")]
    pub kdf_memory: Option<u32>,
    /// Argon2id passes for the new key [default: 3]
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Average chunk size in KiB [default: 16]
    #[arg(long, value_name = "KIB")]
    pub chunk_size: Option<u32>,
    /// Target pack size in MiB [default: 8]
    #[arg(long, value_name = "MIB")]
    pub pack_size: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key (asks for the new key's passphrase; REPRISE_NEW_PASSWORD or --new-password-file)
    Add {
        /// The new key can add backups but never read or delete them
        #[arg(long)]
        write_only: bool,
        /// A note stored with the key (which host or person holds it), shown by `key list`
        #[arg(long, default_value = "")]
        label: String,
        /// With --write-only: the host the key is issued for; a snapshot it
        /// writes that claims another host is reported and never `latest`
        #[arg(long, requires = "write_only", value_name = "NAME")]
        host: Option<String>,
        /// Read the new key's passphrase from this file (first line); else
        /// REPRISE_NEW_PASSWORD, else it is asked twice on the terminal
        #[arg(long, env = "REPRISE_NEW_PASSWORD_FILE", value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
        /// With --write-only: write a local write credential (no passphrase,
        /// mode 0600) instead of a key file in the repository — for hosts
        /// that archive WAL many times a minute
        #[arg(long, requires = "write_only", value_name = "FILE")]
        credential: Option<PathBuf>,
    },
    /// List every key and write credential: ID, kind, status, created, by whom, host, label
    List,
    /// Remove a key: a full-access key file (not the one in use, not the
    /// last), or a write-only key or credential (revoked: what it wrote so
    /// far stays trusted)
    Remove {
        /// Key ID (or unique prefix), as `key list` shows it
        id: String,
    },
    /// Revoke a write-only key or credential (stolen, or its host
    /// rebuilt): what it signed so far stays trusted, anything it writes
    /// later is ignored and reported. Rotate its storage credential too.
    Revoke {
        /// Key ID (or a unique prefix) from `reprise key list`
        id: String,
        /// Why, kept in the revocation record
        #[arg(long, default_value = "revoked")]
        reason: String,
    },
    /// Upgrade a repository written by an earlier version: sign what is
    /// there, endorse the full-access keys, remove format 1 write-only keys
    Upgrade,
    /// Change the passphrase of the key in use
    Passwd {
        /// Read the new passphrase from this file (first line); else
        /// REPRISE_NEW_PASSWORD, else it is asked twice on the terminal
        #[arg(long, env = "REPRISE_NEW_PASSWORD_FILE", value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Write the recovery key (all secrets, unencrypted) for escrow in a safe
    ExportRecovery {
        /// File to create (mode 0600); refuses to overwrite
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Args, Debug)]
#[allow(clippy::struct_excessive_bools, reason = "clap flags: each bool is one switch")]
pub struct BackupArgs {
    /// Plan component to back up
    pub component: Option<String>,
    /// Back up these paths instead of a component's
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Back up standard input as one file
    #[arg(long, conflicts_with = "paths")]
    pub stdin: bool,
    /// File name for --stdin
    #[arg(long, default_value = "stdin", requires = "stdin")]
    pub stdin_name: String,
    /// Component name for --path/--stdin backups [default: files / stdin]
    #[arg(long = "as", value_name = "COMPONENT")]
    pub as_component: Option<String>,
    /// Leave out entries matching this glob (repeatable; added to the
    /// component's own)
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Record this tag in the snapshot (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record [default: this host]
    #[arg(long)]
    pub host: Option<String>,
    /// Read every file, ignoring the files cache
    #[arg(long)]
    pub no_cache: bool,
    /// Worker threads [default: number of cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Back up into a repository the plan declares a copy (`copy_of`),
    /// e.g. while the original is lost [default: refused]
    #[arg(long)]
    pub into_copy: bool,
    /// With --stdin: record a snapshot even when standard input is empty
    /// [default: refused, since an empty dump usually means a failed one]
    #[arg(long, requires = "stdin")]
    pub allow_empty: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only snapshots of this component
    #[arg(long)]
    pub component: Option<String>,
    /// Only snapshots taken on this host
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot ID (or prefix), or `latest`
    pub snapshot: String,
    /// Only below this path
    pub path: Option<String>,
    /// Show mode, size and modification time
    #[arg(short, long)]
    pub long: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot: ID (or prefix), or `latest`
    pub from: String,
    /// The newer snapshot: ID (or prefix), or `latest`
    pub to: String,
}

#[derive(Args, Debug)]
#[allow(clippy::struct_excessive_bools, reason = "clap flags: each bool is one switch")]
pub struct RestoreArgs {
    /// Snapshot ID (or prefix), `latest`, or a plan component (its latest
    /// snapshot); `SNAPSHOT:PATH` restores only PATH. A PostgreSQL base
    /// backup's ID restores that backup (to its end, or --at within the
    /// WAL it has); a logical dump's ID loads with --into
    pub what: String,
    /// Target directory (created if missing; must be empty unless
    /// --overwrite or --delta)
    #[arg(long = "to", visible_alias = "target", value_name = "DIR")]
    pub to: PathBuf,
    /// Restore only these paths (relative to the restored root)
    #[arg(long = "include", value_name = "PATH")]
    pub include: Vec<String>,
    /// Restore into a non-empty target: the snapshot's entries replace
    /// same-named ones, everything else there is kept (a merge; --delta
    /// makes the target exactly the snapshot)
    #[arg(long)]
    pub overwrite: bool,
    /// Files written at once [default: twice the number of cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// PostgreSQL: recovery target (latest, immediate, a time, an LSN, name:RESTORE_POINT)
    #[arg(long, value_name = "TARGET")]
    pub at: Option<String>,
    /// PostgreSQL: start the restored cluster, wait for the target, promote, measure
    #[arg(long)]
    pub start: bool,
    /// Keep a started cluster running after the command returns
    #[arg(long, requires = "start")]
    pub keep_running: bool,
    /// Make an existing copy exactly the snapshot, in place: write only
    /// what differs, remove what the snapshot does not have
    #[arg(long, conflicts_with = "overwrite")]
    pub delta: bool,
    /// PostgreSQL: restore tablespace OID into DIR (repeatable; default
    /// DATADIR.tablespaces/OID, never the original folder)
    #[arg(long = "tablespace", visible_alias = "tablespace-map", value_name = "OID=DIR")]
    pub tablespaces: Vec<String>,
    /// PostgreSQL: restore every tablespace not named by --tablespace into DIR/OID
    #[arg(long = "tablespace-dir", value_name = "DIR")]
    pub tablespace_dir: Option<PathBuf>,
    /// PostgreSQL logical: load the dump into this server (connection
    /// string); a missing database is created, and the server, databases
    /// and table are checked before anything is written
    #[arg(long, value_name = "CONNECTION")]
    pub into: Option<String>,
    /// PostgreSQL logical: only this database; for a one-database dump, a
    /// new name to load it under
    #[arg(long)]
    pub database: Option<String>,
    /// PostgreSQL logical: only this table (`schema.table` or `table`)
    #[arg(long)]
    pub table: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Read and verify every pack
    #[arg(long)]
    pub read_data: bool,
    /// Read part of the packs: `auto/M` (the day's group: run daily, all
    /// data every M days), `N/M` (always group N of M), or `P%` (a random
    /// P%, drawn anew each run)
    #[arg(long, value_name = "auto/M|N/M|P%", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {}

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Validate the plan: every error with file, line and fix; warn about
    /// paths this machine does not have
    Check,
    /// Write a commented starter plan (never over an existing file)
    Init {
        /// Where to write it [default: --plan FILE, else ./reprise.toml]
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the PRA/PCA document from the plan and what the repositories
    /// measure now (objectives against achieved values, restorable points,
    /// 3-2-1, drills, contacts, escalation)
    Render {
        /// Where to write it (replaced if it exists)
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// md, html or pdf [default: from the file's extension, else md]
        #[arg(long, value_name = "md|html|pdf")]
        format: Option<String>,
        /// The document's language: fr or en
        #[arg(long, default_value = "fr", value_name = "fr|en")]
        lang: String,
    },
    /// Say what in the plan is stale or not true now, each finding with a
    /// code, a severity and the fix (exit 12: warnings, 13: errors)
    Lint,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Work directory (kept afterwards); default: a temporary directory removed at the end
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of sample signed documents
    #[arg(long, default_value_t = 600)]
    pub documents: usize,
    /// Size of the sample database (1 = 1000 patients, 3000 procedure cases)
    #[arg(long, default_value_t = 10)]
    pub scale: u32,
    /// Seconds of write load while WAL is archived
    #[arg(long, default_value_t = 15)]
    pub load_seconds: u64,
}
