//! The plan: `reprise.toml`.
//!
//! A plan declares repositories, the components to protect and their
//! objectives. This crate turns the file into a validated [`Plan`] or into a
//! list of [`Diagnostic`]s — *all* of them, each with file, line, column and
//! the fix — so that `reprise plan check` can be run once and every mistake
//! corrected in one pass.
//!
//! Precedence (command line > environment > file) is the interfaces' job:
//! they read the plan for defaults and override them.

pub mod drill;
pub mod continuity;
pub mod duration;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

pub use drill::{DrillPlan, DrillTarget};
pub use continuity::Continuity;
pub use duration::Period;

/// One problem in a plan file, located and with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}; fix: {}", self.file.display(), self.line, self.column, self.message, self.fix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan {}: {source}; fix: check the path (--plan, REPRISE_PLAN) or create it with `reprise plan init`", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Displays the first diagnostic and how many follow (one line, as
    /// every error); `reprise plan check` prints them all.
    #[error("{}{}", .0.first().map(ToString::to_string).unwrap_or_default(), if .0.len() > 1 { format!(" (and {} more: run `reprise plan check`)", if .0.len() == 2 { "1 error".to_owned() } else { format!("{} errors", .0.len() - 1) }) } else { String::new() })]
    Invalid(Vec<Diagnostic>),
}

/// Where a repository's passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// A file readable only by the service account; first line is used.
    File(PathBuf),
    /// An environment variable's name (the value never appears in the plan).
    Env(String),
    /// Ask on the terminal.
    Prompt,
    /// A key file instead of a passphrase: a write credential (hosts that
    /// only add backups, e.g. WAL archiving) or a recovery key.
    KeyFile(PathBuf),
    /// The first line of a program's output (a secrets manager's CLI):
    /// the argument vector, run without a shell.
    Command(Vec<String>),
}

/// Where a repository's storage credentials come from (S3 keys, an Azure
/// account key or SAS token): the plan names the place, never the value.
/// Without one, the process environment (`AWS_ACCESS_KEY_ID`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `NAME=VALUE` lines, with the names the environment would use
    /// (`AWS_ACCESS_KEY_ID`, ...); the file must not be readable by group
    /// or others, as ssh requires of a private key.
    File(PathBuf),
    /// The environment variables of those names, each behind this prefix
    /// (`OFFSITE_` reads `OFFSITE_AWS_ACCESS_KEY_ID`, ...).
    EnvPrefix(String),
    /// `NAME=VALUE` lines printed by a program (argument vector, no shell).
    Command(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPlan {
    pub name: String,
    pub url: String,
    pub password: PasswordSource,
    /// Where the storage is (free text: a region, a data centre). Two
    /// repositories with different sites are off-site from each other;
    /// `None` means unknown, and `status` says so rather than guess.
    pub site: Option<String>,
    /// The repository this one mirrors (`reprise copy` fills it). Only an
    /// original may be named: copies of copies are refused, so that every
    /// copy's freshness is measured against the repository backups write to.
    pub copy_of: Option<String>,
    /// Where its storage credentials come from; `None`: the environment.
    pub credentials: Option<CredentialSource>,
}

/// Grandfather-father-son retention, as written in the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<u32>,
    /// Every snapshot younger than this (a calendar period behind now).
    pub keep_within: Option<Period>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

impl RetentionPolicy {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == RetentionPolicy::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objectives {
    /// Recovery point objective: the most data, in time, the component may lose.
    pub rpo: Option<Duration>,
    /// Recovery time objective: the longest a restore may take.
    pub rto: Option<Duration>,
    pub retention: RetentionPolicy,
    /// Legal retention: no snapshot younger than this may be deleted. A
    /// calendar period: `20y` ends on the same date twenty years later,
    /// written into each snapshot when it is taken (`retain_until`).
    pub retain_for: Option<Period>,
    /// Snapshots must be made immutable where storage allows it.
    pub immutable: bool,
    /// Point-in-time recovery window to keep (PostgreSQL), behind now.
    pub pitr: Option<Period>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentKind {
    /// Directory trees.
    Files,
    /// A PostgreSQL cluster.
    Postgres(PostgresPlan),
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComponentKind::Files => "files",
            ComponentKind::Postgres(_) => "postgres",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresMode {
    /// Base backups of the data directory plus WAL archiving (reprise runs
    /// on the database host).
    Physical,
    /// `pg_dump` of each database (managed servers, no file access).
    Logical,
}

/// Default `block_size_kib`: one PostgreSQL page, so that an incremental
/// backup stores the pages an update touched and nothing around them
/// (docs/BENCHMARKS.md, section 6, measures 8 against 32).
pub const DEFAULT_BLOCK_SIZE_KIB: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresPlan {
    pub mode: PostgresMode,
    /// libpq-style connection string or URL, without the password.
    pub connection: String,
    /// Environment variable holding the password, if any.
    pub password_env: Option<String>,
    pub data_directory: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    /// Logical mode: databases to dump (empty: all).
    pub databases: Vec<String>,
    /// How long a base backup waits for its last WAL file to be archived.
    pub archive_timeout: Duration,
    /// Fixed block size for the data directory's files, in KiB (a multiple
    /// of the 8 KiB page).
    pub block_size_kib: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPlan {
    pub name: String,
    pub kind: ComponentKind,
    pub repository: String,
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    pub tags: Vec<String>,
    pub one_file_system: bool,
    pub objectives: Objectives,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The file the plan was read from.
    pub file: PathBuf,
    pub name: String,
    pub repositories: BTreeMap<String, RepositoryPlan>,
    pub components: BTreeMap<String, ComponentPlan>,
    pub cache_dir: Option<PathBuf>,
    /// `[ledger] witness`: where ledger checkpoints are also written (a
    /// location the writing hosts cannot rewrite; see `reprise_ledger`).
    pub ledger_witness: Option<String>,
    /// `[drills.NAME]`: restore drills (`drill.rs`).
    pub drills: BTreeMap<String, DrillPlan>,
    /// Contacts, escalation, dependencies, legal retention, required
    /// tests and reviews: what the continuity document says beyond
    /// backups (`continuity.rs`).
    pub continuity: Continuity,
}

// ---- raw, spanned form ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    plan: Option<RawMeta>,
    #[serde(default)]
    settings: Option<RawSettings>,
    #[serde(default)]
    repositories: BTreeMap<String, Spanned<RawRepository>>,
    #[serde(default)]
    components: BTreeMap<String, Spanned<RawComponent>>,
    #[serde(default)]
    ledger: Option<RawLedger>,
    #[serde(default)]
    drills: BTreeMap<String, Spanned<drill::RawDrill>>,
    #[serde(default)]
    contacts: BTreeMap<String, Spanned<continuity::RawContact>>,
    #[serde(default)]
    escalation: Vec<continuity::RawEscalation>,
    #[serde(default)]
    dependencies: BTreeMap<String, Spanned<continuity::RawDependency>>,
    #[serde(default)]
    legal: BTreeMap<String, Spanned<continuity::RawLegal>>,
    #[serde(default)]
    tests: BTreeMap<String, Spanned<continuity::RawTest>>,
    #[serde(default)]
    review: Option<continuity::RawReview>,
    #[serde(default)]
    revisions: Vec<continuity::RawRevision>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    #[serde(default)]
    witness: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    cache_dir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    url: Spanned<String>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    key_file: Option<Spanned<String>>,
    #[serde(default)]
    site: Option<Spanned<String>>,
    #[serde(default)]
    copy_of: Option<Spanned<String>>,
    #[serde(default)]
    password_command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    credentials_file: Option<Spanned<String>>,
    #[serde(default)]
    credentials_env_prefix: Option<Spanned<String>>,
    #[serde(default)]
    credentials_command: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    repository: Option<Spanned<String>>,
    #[serde(default)]
    paths: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    #[serde(default)]
    one_file_system: bool,
    #[serde(default)]
    objectives: Option<Spanned<RawObjectives>>,
    // PostgreSQL components.
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    connection: Option<Spanned<String>>,
    #[serde(default)]
    password_env: Option<Spanned<String>>,
    #[serde(default)]
    data_directory: Option<Spanned<String>>,
    #[serde(default)]
    bin_dir: Option<Spanned<String>>,
    #[serde(default)]
    databases: Vec<Spanned<String>>,
    #[serde(default)]
    archive_timeout: Option<Spanned<String>>,
    #[serde(default)]
    block_size_kib: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectives {
    #[serde(default)]
    rpo: Option<Spanned<String>>,
    #[serde(default)]
    rto: Option<Spanned<String>>,
    #[serde(default)]
    retention: Option<Spanned<RawRetention>>,
    #[serde(default)]
    retain_for: Option<Spanned<String>>,
    #[serde(default)]
    immutable: bool,
    #[serde(default)]
    pitr: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    #[serde(default)]
    keep_last: Option<u32>,
    #[serde(default)]
    keep_within: Option<Spanned<String>>,
    #[serde(default)]
    hourly: Option<u32>,
    #[serde(default)]
    daily: Option<u32>,
    #[serde(default)]
    weekly: Option<u32>,
    #[serde(default)]
    monthly: Option<u32>,
    #[serde(default)]
    yearly: Option<u32>,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>, fix: impl Into<String>) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.diags.push(Diagnostic { file: self.file.to_owned(), line, column, message: message.into(), fix: fix.into() });
    }

    fn duration(&mut self, s: &Spanned<String>, what: &str) -> Option<Duration> {
        match duration::parse(s.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.at(s.span().start, format!("{what}: {e}"), "write a duration like \"30s\", \"15m\", \"1h\", \"7d\" or \"2w\"");
                None
            }
        }
    }

    fn period(&mut self, s: &Spanned<String>, what: &str) -> Option<Period> {
        match Period::parse(s.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                self.at(s.span().start, format!("{what}: {e}"), "write a period like \"7d\", \"6mo\" or \"20y\" (months and years are calendar ones)");
                None
            }
        }
    }
}

/// The keys a component of each type takes (the raw form accepts the
/// union, and the type decides).
const FILES_KEYS: &[&str] = &["type", "repository", "paths", "exclude", "tags", "one_file_system", "objectives"];
const POSTGRES_KEYS: &[&str] =
    &["type", "repository", "mode", "connection", "password_env", "data_directory", "bin_dir", "databases", "archive_timeout", "block_size_kib", "tags", "objectives"];

/// A deserialisation error in words a plan author can act on: an unknown
/// key gets the closest valid key of its own table (for a component, of
/// its type), a number out of range the range allowed.
fn explain_toml_error(text: &str, offset: usize, msg: &str) -> (String, String) {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let unknown = rest.split('`').next().unwrap_or_default();
        let listed: Vec<&str> = rest.split("expected ").nth(1).map(|l| l.split('`').skip(1).step_by(2).collect()).unwrap_or_default();
        let (valid, table) = match component_type_with_key(text, unknown) {
            Some((name, kind)) => (if kind == "postgres" { POSTGRES_KEYS.to_vec() } else { FILES_KEYS.to_vec() }, format!("a {kind} component ('{name}')")),
            None => (listed, "this table".to_owned()),
        };
        let fix = match closest(unknown, &valid) {
            Some(k) => format!("did you mean `{k}`? (see docs/PLAN.md for every key)"),
            None => format!("remove it; the keys of {table} are {} (docs/PLAN.md)", valid.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")),
        };
        return (format!("unknown key `{unknown}` in {table}"), fix);
    }
    if let Some(rest) = msg.strip_prefix("invalid value: integer `") {
        let value = rest.split('`').next().unwrap_or_default();
        let key = key_before(text, offset).unwrap_or("this value");
        let range = match msg.rsplit("expected ").next().unwrap_or_default() {
            "u32" => "a whole number from 0 to 4294967295",
            "u64" => "a whole number from 0 to 18446744073709551615",
            "u16" => "a whole number from 0 to 65535",
            "u8" => "a whole number from 0 to 255",
            _ => "a whole number in range",
        };
        return (format!("{key} = {value} is out of range"), format!("give {range} (e.g. {key} = 30)"));
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let key = key_before(text, offset).unwrap_or("this value");
        let fix = if rest.contains("expected u32") || rest.contains("expected u64") {
            format!("write {key} as a whole number without quotes (e.g. {key} = 30)")
        } else if rest.contains("expected a string") {
            format!("quote the value (e.g. {key} = \"7d\")")
        } else if rest.contains("expected a boolean") {
            format!("write {key} = true or {key} = false")
        } else if rest.contains("expected a sequence") {
            format!("write a list (e.g. {key} = [\"...\"])")
        } else {
            "see docs/PLAN.md for the type of this key".to_owned()
        };
        return (format!("{key}: {msg}"), fix);
    }
    if msg.contains("missing field") {
        return (msg.to_owned(), "add the field (see docs/PLAN.md for every key)".to_owned());
    }
    (msg.to_owned(), "correct the TOML syntax at this position".to_owned())
}

/// The component (name, type) whose table holds `key`, read from the
/// plan as plain TOML (it parses: the error is about its meaning).
fn component_type_with_key(text: &str, key: &str) -> Option<(String, String)> {
    let doc: toml::Table = text.parse().ok()?;
    let components = doc.get("components")?.as_table()?;
    components.iter().find_map(|(name, c)| {
        let c = c.as_table()?;
        c.contains_key(key).then(|| (name.clone(), c.get("type").and_then(toml::Value::as_str).unwrap_or("files").to_owned()))
    })
}

/// The key of the `key = value` the offset points into.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let before = &text[..offset.min(text.len())];
    let eq = before.rfind('=')?;
    let key = before[..eq].trim_end();
    let start = key.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).map_or(0, |i| i + 1);
    let k = &key[start..];
    (!k.is_empty()).then_some(k)
}

/// The valid key closest to a misspelt one, if it is close enough to be
/// what was meant.
fn closest<'a>(wrong: &str, valid: &[&'a str]) -> Option<&'a str> {
    let best = valid.iter().map(|k| (edit_distance(wrong, k), *k)).min()?;
    (best.0 <= 2.max(wrong.len() / 3)).then_some(best.1)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A repository's storage credential source: at most one of the three
/// keys, each well formed.
fn credential_source(
    cx: &mut Ctx<'_>,
    name: &str,
    file: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<CredentialSource> {
    let given = usize::from(file.is_some()) + usize::from(prefix.is_some()) + usize::from(command.is_some());
    if given > 1 {
        let at = [file.as_ref().map(|f| f.span().start), prefix.as_ref().map(|p| p.span().start), command.as_ref().map(|c| c.span().start)].into_iter().flatten().max().unwrap_or(0);
        cx.at(at, format!("repository '{name}' sets more than one of credentials_file, credentials_env_prefix, credentials_command"), "keep only one: the storage credentials come from one place");
    }
    if let Some(f) = file {
        if f.get_ref().trim().is_empty() {
            cx.at(f.span().start, format!("repository '{name}' has an empty credentials_file"), "give the path of a file of NAME=VALUE lines (mode 0600), or remove credentials_file");
            return None;
        }
        return Some(CredentialSource::File(resolve(f.get_ref())));
    }
    if let Some(p) = prefix {
        let v = p.get_ref();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            cx.at(p.span().start, format!("credentials_env_prefix '{v}' is not the start of an environment variable name"), "give a prefix such as \"OFFSITE_\" (reprise then reads OFFSITE_AWS_ACCESS_KEY_ID, ...)");
        }
        return Some(CredentialSource::EnvPrefix(p.into_inner()));
    }
    if let Some(c) = command {
        if c.get_ref().first().is_none_or(|p| p.trim().is_empty()) {
            cx.at(c.span().start, format!("repository '{name}' has an empty credentials_command"), "give the program and its arguments as a list, e.g. [\"/usr/local/bin/offsite-credentials\"]");
            return None;
        }
        return Some(CredentialSource::Command(c.into_inner()));
    }
    None
}

/// Where the default plan is looked for when none is named.
#[must_use]
pub fn default_locations() -> Vec<PathBuf> {
    vec![PathBuf::from("reprise.toml"), PathBuf::from("/etc/reprise/reprise.toml")]
}

impl Plan {
    /// Reads and validates a plan file.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Io { path: path.to_owned(), source: e })?;
        Plan::parse(path, &text)
    }

    /// Validates plan text; `file` is used in diagnostics and to resolve
    /// relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Plan, PlanError> {
        let mut cx = Ctx { file, text, diags: Vec::new() };
        let raw: RawPlan = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                let (message, fix) = explain_toml_error(text, offset, e.message().trim());
                cx.at(offset, message, fix);
                return Err(PlanError::Invalid(cx.diags));
            }
        };
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        let mut plan = Plan { file: file.to_owned(), name: raw.plan.and_then(|m| m.name).unwrap_or_default(), ..Plan::default() };
        let raw_continuity = continuity::RawContinuity {
            contacts: raw.contacts,
            escalation: raw.escalation,
            dependencies: raw.dependencies,
            legal: raw.legal,
            tests: raw.tests,
            review: raw.review,
            revisions: raw.revisions,
        };
        if let Some(settings) = raw.settings {
            plan.cache_dir = settings.cache_dir.map(|c| resolve(c.get_ref()));
        }
        if let Some(w) = raw.ledger.and_then(|l| l.witness) {
            let url = w.get_ref().trim();
            if url.is_empty() {
                cx.at(w.span().start, "ledger.witness is empty", "give the witness location (a directory, s3://BUCKET/PREFIX or azure://ACCOUNT/CONTAINER/PREFIX), or remove the key");
            } else {
                plan.ledger_witness = Some(if url.contains("://") || url.starts_with("local:") { url.to_owned() } else { resolve(url).display().to_string() });
            }
        }

        // `copy_of` names other repositories: checked once all are known.
        let mut copy_links: Vec<(String, Spanned<String>)> = Vec::new();
        for (name, repo) in raw.repositories {
            let span = repo.span().start;
            let repo = repo.into_inner();
            if !valid_name(&name) {
                cx.at(span, format!("repository name '{name}' is not valid"), "use letters, digits, '-', '_' or '.' (at most 64)");
            }
            if repo.url.get_ref().trim().is_empty() {
                cx.at(repo.url.span().start, format!("repository '{name}' has an empty url"), "set url to a directory path, e.g. \"/var/backups/reprise\"");
            }
            let password_command = match repo.password_command {
                Some(c) if c.get_ref().first().is_none_or(|p| p.trim().is_empty()) => {
                    cx.at(c.span().start, format!("repository '{name}' has an empty password_command"), "give the program and its arguments as a list, e.g. [\"vault\", \"kv\", \"get\", \"-field=passphrase\", \"secret/reprise\"]");
                    None
                }
                Some(c) => {
                    if repo.password_file.is_some() || repo.password_env.is_some() || repo.key_file.is_some() {
                        cx.at(c.span().start, format!("repository '{name}' sets password_command and another passphrase source"), "keep only one of password_file, password_env, password_command, key_file");
                    }
                    Some(c.into_inner())
                }
                None => None,
            };
            let password = match (repo.password_file, repo.password_env, repo.key_file) {
                _ if password_command.is_some() => PasswordSource::Command(password_command.unwrap_or_default()),
                (Some(f), Some(e), _) => {
                    cx.at(e.span().start, format!("repository '{name}' sets both password_file and password_env"), "keep only one of them");
                    PasswordSource::File(resolve(f.get_ref()))
                }
                (None, None, Some(k)) => PasswordSource::KeyFile(resolve(k.get_ref())),
                (_, _, Some(k)) => {
                    cx.at(k.span().start, format!("repository '{name}' sets key_file and a passphrase source"), "keep key_file (hosts that only write) or the passphrase, not both");
                    PasswordSource::KeyFile(resolve(k.get_ref()))
                }
                (Some(f), None, None) => PasswordSource::File(resolve(f.get_ref())),
                (None, Some(e), None) => {
                    let var = e.get_ref();
                    if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        cx.at(e.span().start, format!("password_env '{var}' is not an environment variable name"), "give the variable's name, e.g. \"REPRISE_PASSWORD\" (never the passphrase itself)");
                    }
                    PasswordSource::Env(var.clone())
                }
                (None, None, None) => PasswordSource::Prompt,
            };
            let site = match repo.site {
                Some(s) if s.get_ref().trim().is_empty() => {
                    cx.at(s.span().start, format!("repository '{name}' has an empty site"), "name where the storage is (e.g. \"francecentral\", \"paris-dc2\"), or remove site");
                    None
                }
                Some(s) => Some(s.into_inner()),
                None => None,
            };
            if let Some(c) = &repo.copy_of {
                copy_links.push((name.clone(), c.clone()));
            }
            let credentials = credential_source(&mut cx, &name, repo.credentials_file, repo.credentials_env_prefix, repo.credentials_command, &resolve);
            let url = repo.url.into_inner();
            let url = if url.contains("://") || url.starts_with("local:") { url } else { resolve(&url).display().to_string() };
            plan.repositories.insert(name.clone(), RepositoryPlan { name, url, password, site, copy_of: repo.copy_of.map(Spanned::into_inner), credentials });
        }
        for (name, target) in &copy_links {
            let at = target.span().start;
            let t = target.get_ref();
            if t == name {
                cx.at(at, format!("repository '{name}' is declared a copy of itself"), "set copy_of to the repository it mirrors (the one components back up to), or remove copy_of");
            } else if let Some(original) = plan.repositories.get(t) {
                if let Some(grand) = &original.copy_of {
                    cx.at(
                        at,
                        format!("repository '{name}' is a copy of '{t}', which is itself a copy of '{grand}'"),
                        format!("set copy_of = \"{grand}\" (copies are made from the original repository, never from another copy)"),
                    );
                }
                if original.url == plan.repositories[name].url {
                    cx.at(at, format!("repository '{name}' has the same url as '{t}', of which it is a copy"), "give the copy its own location (another disk, bucket, region or provider)");
                }
            } else {
                let known: Vec<_> = plan.repositories.keys().filter(|k| *k != name).map(String::as_str).collect();
                cx.at(
                    at,
                    format!("repository '{name}' is a copy of '{t}', which the plan does not declare"),
                    if known.is_empty() { "declare the original under [repositories.NAME]".to_owned() } else { format!("use one of: {}", known.join(", ")) },
                );
            }
        }

        for (name, comp) in raw.components {
            let span = comp.span().start;
            let comp = comp.into_inner();
            if !valid_name(&name) {
                cx.at(span, format!("component name '{name}' is not valid"), "use letters, digits, '-', '_' or '.' (at most 64)");
            }
            let is_postgres = comp.kind.get_ref() == "postgres";
            let kind = match comp.kind.get_ref().as_str() {
                "files" => {
                    for (field, span) in [
                        ("mode", comp.mode.as_ref().map(|s| s.span().start)),
                        ("connection", comp.connection.as_ref().map(|s| s.span().start)),
                        ("data_directory", comp.data_directory.as_ref().map(|s| s.span().start)),
                        ("password_env", comp.password_env.as_ref().map(|s| s.span().start)),
                        ("bin_dir", comp.bin_dir.as_ref().map(|s| s.span().start)),
                        ("archive_timeout", comp.archive_timeout.as_ref().map(|s| s.span().start)),
                        ("block_size_kib", comp.block_size_kib.as_ref().map(|s| s.span().start)),
                    ] {
                        if let Some(at) = span {
                            cx.at(at, format!("'{field}' is a setting of postgres components, and '{name}' is of type files"), format!("remove {field}, or set type = \"postgres\""));
                        }
                    }
                    ComponentKind::Files
                }
                "postgres" => {
                    let mode = match comp.mode.as_ref().map(|m| m.get_ref().as_str()) {
                        None | Some("physical") => PostgresMode::Physical,
                        Some("logical") => PostgresMode::Logical,
                        Some(other) => {
                            cx.at(comp.mode.as_ref().map_or(span, |m| m.span().start), format!("unknown mode '{other}'"), "use mode = \"physical\" (on the database host) or \"logical\" (managed servers)");
                            PostgresMode::Physical
                        }
                    };
                    let connection = match &comp.connection {
                        Some(c) => {
                            if c.get_ref().to_ascii_lowercase().contains("password=") || (c.get_ref().contains("://") && c.get_ref().split('@').next().is_some_and(|a| a.matches(':').count() > 1)) {
                                cx.at(c.span().start, format!("the connection of '{name}' contains a password"), "remove it and name an environment variable with password_env (passwords never go in the plan)");
                            }
                            c.get_ref().clone()
                        }
                        None => {
                            cx.at(span, format!("postgres component '{name}' has no connection"), "add connection = \"host=/var/run/postgresql user=postgres dbname=postgres\"");
                            String::new()
                        }
                    };
                    let archive_timeout = comp.archive_timeout.as_ref().and_then(|d| cx.duration(d, "archive_timeout")).unwrap_or(Duration::from_secs(120));
                    let block_size_kib = match &comp.block_size_kib {
                        Some(b) if *b.get_ref() == 0 || b.get_ref() % 8 != 0 || *b.get_ref() > 1024 => {
                            cx.at(b.span().start, format!("block_size_kib = {} is not a whole number of 8 KiB pages up to 1024", b.get_ref()), "use 8 (one page, the default), 16, 32 ... 1024");
                            DEFAULT_BLOCK_SIZE_KIB
                        }
                        Some(b) => *b.get_ref(),
                        None => DEFAULT_BLOCK_SIZE_KIB,
                    };
                    if mode == PostgresMode::Logical && comp.data_directory.is_some() {
                        cx.at(comp.data_directory.as_ref().map_or(span, |d| d.span().start), "data_directory is not used in logical mode", "remove it, or use mode = \"physical\"");
                    }
                    ComponentKind::Postgres(PostgresPlan {
                        mode,
                        connection,
                        password_env: comp.password_env.as_ref().map(|p| p.get_ref().clone()),
                        data_directory: comp.data_directory.as_ref().map(|d| resolve(d.get_ref())),
                        bin_dir: comp.bin_dir.as_ref().map(|d| resolve(d.get_ref())),
                        databases: comp.databases.iter().map(|d| d.get_ref().clone()).collect(),
                        archive_timeout,
                        block_size_kib,
                    })
                }
                other => {
                    cx.at(comp.kind.span().start, format!("component '{name}' has unknown type '{other}'"), "use type = \"files\" or \"postgres\"");
                    ComponentKind::Files
                }
            };
            let repository = match &comp.repository {
                Some(r) => {
                    if !plan.repositories.contains_key(r.get_ref()) {
                        let known: Vec<_> = plan.repositories.keys().map(String::as_str).collect();
                        cx.at(
                            r.span().start,
                            format!("component '{name}' uses repository '{}', which the plan does not declare", r.get_ref()),
                            if known.is_empty() { "declare it under [repositories.NAME]".to_owned() } else { format!("use one of: {}", known.join(", ")) },
                        );
                    }
                    if let Some(original) = plan.repositories.get(r.get_ref()).and_then(|repo| repo.copy_of.as_ref()) {
                        cx.at(
                            r.span().start,
                            format!("component '{name}' backs up to '{}', which is a copy of '{original}'", r.get_ref()),
                            format!("set repository = \"{original}\": backups go to the original, and `reprise copy` fills its copies"),
                        );
                    }
                    r.get_ref().clone()
                }
                // Copies are not where backups go: a plan with one original
                // repository and its copies needs no `repository =`.
                None if plan.repositories.values().filter(|r| r.copy_of.is_none()).count() == 1 => {
                    plan.repositories.values().find(|r| r.copy_of.is_none()).map(|r| r.name.clone()).unwrap_or_default()
                }
                None => {
                    cx.at(span, format!("component '{name}' does not say which repository it goes to"), "add repository = \"NAME\"");
                    String::new()
                }
            };
            let mut paths = Vec::new();
            match &comp.paths {
                Some(p) if is_postgres => cx.at(p.span().start, format!("postgres component '{name}' takes no paths"), "remove paths (set data_directory for a physical backup)"),
                None if is_postgres => {}
                Some(p) if !p.get_ref().is_empty() => {
                    for path in p.get_ref() {
                        if Path::new(path.get_ref()).is_absolute() {
                            paths.push(PathBuf::from(path.get_ref()));
                        } else {
                            cx.at(path.span().start, format!("path '{}' of component '{name}' is relative", path.get_ref()), "write the absolute path (backups must not depend on the current directory)");
                        }
                    }
                }
                Some(p) => cx.at(p.span().start, format!("component '{name}' has no paths"), "list at least one directory in paths = [...]"),
                None => cx.at(span, format!("component '{name}' has no paths"), "add paths = [\"/absolute/path\"]"),
            }
            for ex in &comp.exclude {
                if let Err(e) = globset::Glob::new(ex.get_ref()) {
                    cx.at(ex.span().start, format!("exclude pattern '{}' is invalid: {}", ex.get_ref(), e.kind()), "fix the glob (e.g. \"*.tmp\", \"/srv/docs/cache/**\")");
                }
            }
            let mut objectives = Objectives::default();
            if let Some(o) = comp.objectives {
                let o = o.into_inner();
                objectives.rpo = o.rpo.as_ref().and_then(|d| cx.duration(d, "rpo"));
                objectives.rto = o.rto.as_ref().and_then(|d| cx.duration(d, "rto"));
                objectives.retain_for = o.retain_for.as_ref().and_then(|d| cx.period(d, "retain_for"));
                objectives.immutable = o.immutable;
                objectives.pitr = o.pitr.as_ref().and_then(|d| cx.period(d, "pitr"));
                if let (Some(p), false) = (&o.pitr, is_postgres) {
                    cx.at(p.span().start, format!("pitr is for postgres components, and '{name}' is not one"), "remove pitr");
                }
                if let Some(r) = o.retention {
                    let span = r.span().start;
                    let r = r.into_inner();
                    objectives.retention = RetentionPolicy {
                        keep_last: r.keep_last,
                        keep_within: r.keep_within.as_ref().and_then(|d| cx.period(d, "keep_within")),
                        hourly: r.hourly,
                        daily: r.daily,
                        weekly: r.weekly,
                        monthly: r.monthly,
                        yearly: r.yearly,
                    };
                    if objectives.retention.is_empty() {
                        cx.at(span, format!("retention of '{name}' keeps nothing"), "set at least one of keep_last, keep_within, hourly, daily, weekly, monthly, yearly");
                    }
                }
            }
            plan.components.insert(
                name.clone(),
                ComponentPlan {
                    name,
                    kind,
                    repository,
                    paths,
                    excludes: comp.exclude.into_iter().map(Spanned::into_inner).collect(),
                    tags: comp.tags.into_iter().map(Spanned::into_inner).collect(),
                    one_file_system: comp.one_file_system,
                    objectives,
                },
            );
        }
        drill::parse(&mut cx, &mut plan, raw.drills, &resolve);
        let known: Vec<String> = plan.components.keys().cloned().collect();
        plan.continuity = continuity::parse(&mut cx, raw_continuity, &known.iter().map(String::as_str).collect::<Vec<_>>());
        if cx.diags.is_empty() { Ok(plan) } else { Err(PlanError::Invalid(cx.diags)) }
    }

    /// The repositories declared copies of `original` (`copy_of`), by name.
    #[must_use]
    pub fn copies_of(&self, original: &str) -> Vec<&RepositoryPlan> {
        self.repositories.values().filter(|r| r.copy_of.as_deref() == Some(original)).collect()
    }

    pub fn component(&self, name: &str) -> Result<&ComponentPlan, String> {
        self.components.get(name).ok_or_else(|| {
            let known: Vec<_> = self.components.keys().map(String::as_str).collect();
            format!("the plan {} has no component '{name}'; components: {}", self.file.display(), if known.is_empty() { "none".into() } else { known.join(", ") })
        })
    }
}

#[cfg(test)]
#[allow(clippy::duration_suboptimal_units, reason = "plans count in seconds; from_mins and from_hours are newer than the MSRV")]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[plan]
name = "MedicApp"

[repositories.primary]
url = "/var/backups/reprise"
password_file = "/etc/reprise/primary.pass"

[components.signed-documents]
type = "files"
paths = ["/srv/medicapp/legal_documents_signed"]
exclude = ["*.tmp"]
tags = ["hds"]

[components.signed-documents.objectives]
rpo = "15m"
rto = "4h"
retain_for = "20y"
immutable = true
retention = { keep_within = "7d", daily = 30, weekly = 12, monthly = 12, yearly = 7 }
"#;

    /// The shipped example is the seed's whole plan: its figures, exactly.
    #[test]
    fn the_medicapp_example_is_the_seed_schedule() {
        let text = include_str!("../../../docs/examples/medicapp.toml");
        let plan = Plan::parse(Path::new("docs/examples/medicapp.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let day = 86_400;
        let db = plan.component("medicapp-db").unwrap();
        assert!(matches!(db.kind, ComponentKind::Postgres(_)));
        assert_eq!(db.objectives.pitr, Some(Period::from_duration(Duration::from_secs(7 * day))));
        let seed = RetentionPolicy { keep_within: Some(Period::from_duration(Duration::from_secs(7 * day))), daily: Some(30), weekly: Some(12), monthly: Some(12), yearly: Some(7), ..RetentionPolicy::default() };
        assert_eq!(db.objectives.retention, seed);
        assert_eq!((db.objectives.rpo, db.objectives.rto), (Some(Duration::from_secs(3600)), Some(Duration::from_secs(7200))));
        let docs = plan.component("signed-documents").unwrap();
        assert_eq!(docs.objectives.retain_for, Some(Period { months: 20 * 12, seconds: 0 }));
        assert!(docs.objectives.immutable);
        assert!(plan.component("secrets").is_ok());
        assert_eq!(plan.repositories["geo"].copy_of.as_deref(), Some("primary"));
        assert_ne!(plan.repositories["geo"].site, plan.repositories["primary"].site, "the geo copy is off-site");
        let drill = &plan.drills["monthly-db"];
        assert_eq!(drill.components, ["medicapp-db", "signed-documents"]);
        assert_eq!(drill.schedule.as_ref().map(|s| s.cron.as_str()), Some("0 3 1 * *"), "monthly, as §10.1 asks");
    }

    /// The example's continuity sections: contacts, the escalation
    /// ladder, dependencies, the legal retention, required tests, review
    /// dates (unquoted TOML dates and quoted ones alike).
    #[test]
    fn the_medicapp_example_declares_its_continuity() {
        let text = include_str!("../../../docs/examples/medicapp.toml");
        let plan = Plan::parse(Path::new("docs/examples/medicapp.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let c = &plan.continuity;
        assert_eq!(c.contacts.len(), 3);
        assert_eq!(c.contacts["pra-lead"].reviewed, Some(jiff::civil::date(2026, 10, 5)));
        assert_eq!(c.escalation.iter().map(|l| l.after.as_secs()).collect::<Vec<_>>(), vec![0, 900, 4500, 18_900]);
        assert_eq!(c.escalation[2].who, vec!["pra-lead"]);
        assert_eq!(c.dependencies["yousign"].criticality, continuity::Criticality::Important);
        let legal = &c.legal["medical-records"];
        assert_eq!((legal.retain, legal.components.len()), (Period { months: 240, seconds: 0 }, 2));
        assert_eq!(c.tests["database-restore"].every, Period { months: 1, seconds: 0 });
        assert_eq!(c.review.next, Some(jiff::civil::date(2027, 10, 5)), "reviewed + every");
        assert_eq!(c.review.contacts_every, Period { months: 3, seconds: 0 });
        assert_eq!(c.revisions.len(), 2);
        assert_eq!(c.legal_for("signed-documents").count(), 1);
        let quoted = text.replace("reviewed = 2026-10-05\nevery", "reviewed = \"2026-10-05\"\nevery");
        assert_ne!(quoted, text);
        assert_eq!(Plan::parse(Path::new("p.toml"), &quoted).unwrap().continuity.review.reviewed, Some(jiff::civil::date(2026, 10, 5)));
    }

    /// Every mistake in the continuity sections is located and names its
    /// fix: an unknown contact, component or criticality, a date that is
    /// not one, levels out of order, an unreachable contact.
    #[test]
    fn continuity_mistakes_are_located_with_their_fix() {
        let text = format!(
            "{GOOD}\n[contacts.lead]\nname = \"A\"\nrole = \"R\"\nreviewed = \"2026-13-01\"\n\n\
             [[escalation]]\nafter = \"1h\"\nwho = [\"lead\"]\n[[escalation]]\nafter = \"30m\"\nwho = [\"leed\"]\n\n\
             [dependencies.x]\ncriticality = \"urgent\"\n\n[legal.records]\nretain = \"20y\"\ncomponents = [\"signed-docs\"]\n\n\
             [tests.monthly]\ncomponents = [\"signed-documents\"]\nevery = \"1 fortnight\"\n"
        );
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &text) else { panic!("accepted") };
        let find = |needle: &str| d.iter().find(|x| x.message.contains(needle)).unwrap_or_else(|| panic!("no diagnostic with {needle:?} in {d:#?}"));
        assert!(find("neither phone nor email").fix.contains("phone"));
        assert!(find("2026-13-01").fix.contains("YYYY-MM-DD"));
        assert!(find("no later than the level before").fix.contains("longer `after`"));
        assert!(find("contact 'leed'").fix.contains("lead"));
        assert!(find("criticality 'urgent'").fix.contains("\"critical\""));
        assert!(find("component 'signed-docs'").fix.contains("signed-documents"));
        assert!(find("every").message.contains("fortnight"));
        assert_eq!(d.len(), 7, "{d:#?}");
        assert!(d.iter().all(|x| x.line > 20), "each located on its own line: {d:#?}");
    }

    #[test]
    fn the_seed_schedule_parses() {
        let plan = Plan::parse(Path::new("reprise.toml"), GOOD).unwrap();
        let c = plan.component("signed-documents").unwrap();
        assert_eq!(c.repository, "primary");
        assert_eq!(c.objectives.rpo, Some(Duration::from_secs(900)));
        assert_eq!(c.objectives.retention.daily, Some(30));
        assert_eq!(c.objectives.retention.keep_within, Some(Period::from_duration(Duration::from_secs(7 * 86_400))));
        assert_eq!(plan.repositories["primary"].password, PasswordSource::File("/etc/reprise/primary.pass".into()));
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let bad = GOOD.replace("rpo = \"15m\"", "rpo = \"15x\"").replace("rto = \"4h\"", "rto = \"soon\"").replace("\"/srv/medicapp", "\"srv/medicapp");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert_eq!(d.len(), 3, "{d:?}");
        let lines: Vec<usize> = d.iter().map(|x| x.line).collect();
        assert!(lines.contains(&11) && lines.contains(&16) && lines.contains(&17), "{lines:?}");
        assert!(d.iter().all(|x| !x.fix.is_empty()));
    }

    #[test]
    fn unknown_fields_name_the_alternatives() {
        let bad = GOOD.replace("retain_for", "retain_four");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert_eq!(d[0].line, 18);
        assert!(d[0].fix.contains("`retain_for`"), "{}", d[0]);
    }

    /// The bug: an unknown key in a files component listed every key of
    /// every component type, PostgreSQL ones included, as the fix.
    #[test]
    fn unknown_key_suggests_the_closest_key_of_that_component_type_only() {
        let bad = GOOD.replace("exclude = ", "exclud = ");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert!(d[0].fix.contains("did you mean `exclude`?"), "{}", d[0]);
        assert!(!d[0].fix.contains("connection") && !d[0].fix.contains("data_directory"), "{}", d[0]);
        // Nothing close: the keys of a files component, and only those.
        let bad = GOOD.replace("exclude = ", "frobnicate = ");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert!(d[0].fix.contains("`one_file_system`") && !d[0].fix.contains("connection"), "{}", d[0]);
        assert!(d[0].message.contains("files component"), "{}", d[0]);
        // A postgres component is offered its own keys.
        let pg = "[repositories.r]\nurl = \"/x\"\n[components.db]\ntype = \"postgres\"\nconection = \"host=/tmp\"\n";
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), pg) else { panic!("accepted") };
        assert!(d[0].fix.contains("did you mean `connection`?"), "{}", d[0]);
    }

    /// The bug: `daily = -3` said "correct the TOML syntax".
    #[test]
    fn negative_count_says_which_range_is_allowed() {
        let bad = GOOD.replace("daily = 30", "daily = -3");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("daily = -3"), "{}", d[0]);
        assert!(d[0].fix.contains("from 0 to 4294967295") && !d[0].fix.contains("syntax"), "{}", d[0]);
        assert_eq!(d[0].line, 20);
        let bad = GOOD.replace("daily = 30", "daily = \"30\"");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert!(d[0].fix.contains("without quotes"), "{}", d[0]);
    }

    #[test]
    fn a_component_backing_up_to_a_copy_is_an_error() {
        let bad = COPIES.replace("repository = \"primary\"", "repository = \"secondary\"");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert!(d[0].message.contains("copy of 'primary'") && d[0].fix.contains("repository = \"primary\""), "{}", d[0]);
    }

    #[test]
    fn ledger_witness_is_a_url_or_a_path_beside_the_plan() {
        let plan = Plan::parse(Path::new("/etc/reprise/p.toml"), &format!("{GOOD}\n[ledger]\nwitness = \"s3://audit/witness\"\n")).unwrap();
        assert_eq!(plan.ledger_witness.as_deref(), Some("s3://audit/witness"));
        let plan = Plan::parse(Path::new("/etc/reprise/p.toml"), &format!("{GOOD}\n[ledger]\nwitness = \"witness\"\n")).unwrap();
        assert_eq!(plan.ledger_witness.as_deref(), Some("/etc/reprise/witness"));
        assert_eq!(Plan::parse(Path::new("p.toml"), GOOD).unwrap().ledger_witness, None);
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &format!("{GOOD}\n[ledger]\nwitness = \" \"\n")) else { panic!("accepted") };
        assert!(d[0].message.contains("ledger.witness is empty"), "{}", d[0]);
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &format!("{GOOD}\n[ledger]\nwitnes = \"x\"\n")) else { panic!("accepted") };
        assert!(d[0].to_string().contains("`witness`"), "the unknown key names the right one: {}", d[0]);
    }

    #[test]
    fn postgres_components() {
        let text = format!(
            "{GOOD}\n[components.database]\ntype = \"postgres\"\nconnection = \"host=/var/run/postgresql user=postgres\"\ndata_directory = \"/var/lib/postgresql/15/main\"\n[components.database.objectives]\nrpo = \"1h\"\nrto = \"2h\"\npitr = \"7d\"\n"
        );
        let plan = Plan::parse(Path::new("p.toml"), &text).unwrap();
        let ComponentKind::Postgres(pg) = &plan.component("database").unwrap().kind else { panic!("not postgres") };
        assert_eq!(pg.mode, PostgresMode::Physical);
        assert_eq!(plan.component("database").unwrap().objectives.pitr, Some(Period::from_duration(Duration::from_secs(7 * 86_400))));
        let bad = text.replace("user=postgres\"", "user=postgres password=x\"").replace("type = \"files\"\n", "type = \"files\"\nconnection = \"x\"\n");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().any(|x| x.message.contains("password")));
        assert!(d.iter().any(|x| x.message.contains("setting of postgres components")));
    }

    const COPIES: &str = r#"
[repositories.primary]
url = "/var/backups/reprise"
site = "paris-dc1"

[repositories.secondary]
url = "s3://medicapp-backup/reprise"
site = "francecentral"
copy_of = "primary"

[components.docs]
type = "files"
repository = "primary"
paths = ["/srv/docs"]
"#;

    #[test]
    fn copies_and_sites() {
        let plan = Plan::parse(Path::new("p.toml"), COPIES).unwrap();
        assert_eq!(plan.repositories["primary"].site.as_deref(), Some("paris-dc1"));
        assert_eq!(plan.repositories["primary"].copy_of, None);
        assert_eq!(plan.repositories["secondary"].copy_of.as_deref(), Some("primary"));
        let copies: Vec<&str> = plan.copies_of("primary").iter().map(|r| r.name.as_str()).collect();
        // One original repository: components go there without saying so.
        let implicit = Plan::parse(Path::new("p.toml"), &COPIES.replace("repository = \"primary\"\n", "")).unwrap();
        assert_eq!(implicit.component("docs").unwrap().repository, "primary");
        assert_eq!(copies, vec!["secondary"]);
        assert!(plan.copies_of("secondary").is_empty());
    }

    #[test]
    fn bad_copy_links_are_located_with_a_fix() {
        // Unknown original.
        let bad = COPIES.replace("copy_of = \"primary\"", "copy_of = \"primery\"");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("primery") && d[0].fix.contains("primary"), "{}", d[0]);
        assert_eq!(d[0].line, 9);
        // A copy of itself.
        let bad = COPIES.replace("copy_of = \"primary\"", "copy_of = \"secondary\"");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert!(d[0].message.contains("copy of itself"), "{}", d[0]);
        // A copy of a copy.
        let bad = format!("{COPIES}\n[repositories.tertiary]\nurl = \"/mnt/tape\"\ncopy_of = \"secondary\"\n");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("itself a copy") && d[0].fix.contains("copy_of = \"primary\""), "{}", d[0]);
        // The same location twice, and an empty site.
        let bad = COPIES.replace("s3://medicapp-backup/reprise", "/var/backups/reprise").replace("site = \"francecentral\"", "site = \" \"");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().any(|x| x.message.contains("same url")) && d.iter().any(|x| x.message.contains("empty site")), "{d:?}");
    }

    #[test]
    fn unknown_repository_is_an_error() {
        let bad = GOOD.replace("type = \"files\"", "type = \"files\"\nrepository = \"secondary\"");
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), &bad) else { panic!("accepted") };
        assert!(d[0].message.contains("secondary") && d[0].fix.contains("primary"), "{}", d[0]);
    }

    /// Per-repository secrets: the plan names where they come from (never
    /// the values), one source each, and a malformed source is located.
    #[test]
    fn repository_secret_sources() {
        let text = "[repositories.primary]\nurl = \"/srv/r\"\npassword_command = [\"vault\", \"read\", \"-field=p\"]\ncredentials_file = \"creds\"\n\n\
                    [repositories.offsite]\nurl = \"s3://b/r\"\ncopy_of = \"primary\"\ncredentials_env_prefix = \"OFFSITE_\"\n\n\
                    [repositories.third]\nurl = \"azure://a/c\"\ncredentials_command = [\"/usr/local/bin/az-sas\"]\n";
        let plan = Plan::parse(Path::new("/etc/reprise/p.toml"), text).unwrap();
        let r = &plan.repositories;
        assert_eq!(r["primary"].password, PasswordSource::Command(vec!["vault".into(), "read".into(), "-field=p".into()]));
        assert_eq!(r["primary"].credentials, Some(CredentialSource::File("/etc/reprise/creds".into())));
        assert_eq!(r["offsite"].credentials, Some(CredentialSource::EnvPrefix("OFFSITE_".into())));
        assert_eq!(r["third"].credentials, Some(CredentialSource::Command(vec!["/usr/local/bin/az-sas".into()])));
        assert_eq!(r["third"].password, PasswordSource::Prompt);

        let bad = "[repositories.primary]\nurl = \"/srv/r\"\npassword_env = \"P\"\npassword_command = []\ncredentials_file = \"c\"\ncredentials_env_prefix = \"A B\"\n";
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), bad) else { panic!("accepted") };
        assert!(d.iter().any(|x| x.message.contains("empty password_command") && x.line == 4), "{d:?}");
        assert!(d.iter().any(|x| x.message.contains("more than one of credentials_file") && x.line == 6), "{d:?}");
        let bad = "[repositories.primary]\nurl = \"/srv/r\"\npassword_file = \"f\"\npassword_command = [\"x\"]\n";
        let Err(PlanError::Invalid(d)) = Plan::parse(Path::new("p.toml"), bad) else { panic!("accepted") };
        assert!(d[0].message.contains("password_command and another passphrase source") && d[0].fix.contains("keep only one"), "{d:?}");
    }
}
