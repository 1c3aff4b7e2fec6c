//! From raw flags to what commands need: the plan, the repository, the
//! passphrase, the output mode.
//!
//! Precedence everywhere: command line > environment (`REPRISE_*`, which
//! clap folds into the flags) > plan file > built-in default.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};

use reprise_engine::backends::{self, Backend};
use reprise_engine::format::keys::{KdfParams, Secrets};
use reprise_engine::{CancelToken, Progress, Repository};
use reprise_plan::{ComponentPlan, PasswordSource, Plan};
use zeroize::Zeroizing;

use crate::args::{Global, KdfArgs};
use crate::exit;

pub struct Context {
    pub global: Global,
    pub plan: Option<Plan>,
    pub cancel: CancelToken,
}

/// What opens a repository.
pub enum Key {
    Secrets(Secrets),
    Passphrase(Zeroizing<Vec<u8>>),
}

/// Which repository a command works on, and how its passphrase is found.
pub struct Target {
    pub url: String,
    pub password: PasswordSource,
}

impl Context {
    pub fn new(global: Global, cancel: CancelToken) -> Result<Context> {
        let plan = match &global.plan {
            Some(p) => Some(Plan::load(p)?),
            None => reprise_plan::default_locations().into_iter().find(|p| p.exists()).map(|p| Plan::load(&p)).transpose()?,
        };
        Ok(Context { global, plan, cancel })
    }

    pub fn plan(&self) -> Result<&Plan> {
        self.plan.as_ref().ok_or_else(|| {
            exit::with_code(exit::NOT_FOUND, crate::commands::plan::NO_PLAN)
        })
    }

    pub fn component(&self, name: &str) -> Result<&ComponentPlan> {
        self.plan()?.component(name).map_err(|m| exit::with_code(exit::NOT_FOUND, m))
    }

    /// The repository to use: `--repo` (a plan name or a URL), else the
    /// component's, else the plan's only repository that is not a copy.
    pub fn target(&self, component: Option<&ComponentPlan>) -> Result<Target> {
        let from_plan = |name: &str| {
            self.plan.as_ref().and_then(|p| p.repositories.get(name)).map(|r| Target {
                url: r.url.clone(),
                password: r.password.clone(),
            })
        };
        if let Some(r) = &self.global.repo {
            return Ok(from_plan(r).unwrap_or_else(|| Target { url: r.clone(), password: PasswordSource::Prompt }));
        }
        if let Some(c) = component {
            return from_plan(&c.repository).ok_or_else(|| exit::usage(format!("component '{}' names unknown repository '{}'", c.name, c.repository)));
        }
        // The plan's only repository, or its only original (copies are
        // chosen explicitly, with --repo NAME).
        if let Some(plan) = &self.plan {
            let originals: Vec<&String> = plan.repositories.values().filter(|r| r.copy_of.is_none()).map(|r| &r.name).collect();
            if let [name] = originals.as_slice() {
                return Ok(from_plan(name).expect("exists"));
            }
        }
        Err(exit::usage("which repository? pass --repo NAME|URL (or set REPRISE_REPO), or declare exactly one repository in the plan"))
    }

    pub fn backend(target: &Target) -> Result<Arc<dyn Backend>> {
        Self::backend_with_lock(target, None)
    }

    /// The backend, setting `lock` on the objects it creates (see
    /// `commands::immutability`).
    pub fn backend_with_lock(target: &Target, lock: Option<backends::Lock>) -> Result<Arc<dyn Backend>> {
        backends::open_with_lock(&target.url, lock).map_err(|e| {
            let code = match e.kind {
                backends::ErrorKind::PermissionDenied => exit::PERMISSION,
                backends::ErrorKind::Unavailable => exit::UNAVAILABLE,
                _ => exit::USAGE,
            };
            exit::with_code(code, e.message)
        })
    }

    /// The passphrase, from the first source that has one.
    pub fn passphrase(&self, plan_source: &PasswordSource, prompt: &str) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(file) = &self.global.password_file {
            return read_password_file(file);
        }
        if let Some(v) = std::env::var_os("REPRISE_PASSWORD") {
            use std::os::unix::ffi::OsStringExt;
            return Ok(Zeroizing::new(v.into_vec()));
        }
        match plan_source {
            PasswordSource::File(f) => read_password_file(f),
            PasswordSource::Env(var) => std::env::var_os(var).map(|v| Zeroizing::new(std::os::unix::ffi::OsStringExt::into_vec(v))).ok_or_else(|| {
                exit::usage(format!("the plan reads the passphrase from ${var}, which is not set: export it, or use --password-file"))
            }),
            PasswordSource::Prompt | PasswordSource::KeyFile(_) => prompt_password(prompt),
        }
    }

    /// Opens the target repository with the resolved key.
    pub fn open(&self, component: Option<&ComponentPlan>) -> Result<Arc<Repository>> {
        let target = self.target(component)?;
        self.open_target(&target, component.and_then(crate::commands::immutability::lock_for))
    }

    /// A repository the plan declares, by name, whatever `--repo` says
    /// (`copy` and `status` work on several repositories at once).
    pub fn named_target(&self, name: &str) -> Result<Target> {
        let plan = self.plan()?;
        let r = plan.repositories.get(name).ok_or_else(|| {
            let known: Vec<_> = plan.repositories.keys().map(String::as_str).collect();
            exit::usage(format!(
                "the plan declares no repository '{name}': declare it under [repositories.{name}] (url, passphrase source, copy_of), or use one of: {}",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        })?;
        Ok(Target { url: r.url.clone(), password: r.password.clone() })
    }

    /// Opens a plan repository by name (see [`Context::named_target`]).
    pub fn open_named(&self, name: &str) -> Result<Arc<Repository>> {
        let target = self.named_target(name)?;
        self.open_target(&target, None)
    }

    /// Opens a repository with the key resolved for it; `lock` is the
    /// storage-level lock set on what it creates (`commands::immutability`).
    pub fn open_target(&self, target: &Target, lock: Option<backends::Lock>) -> Result<Arc<Repository>> {
        let backend = Self::backend_with_lock(target, lock)?;
        match self.key(target)? {
            Key::Secrets(secrets) => Ok(Arc::new(Repository::open_with_secrets(backend, secrets)?)),
            Key::Passphrase(pass) => Ok(Arc::new(Repository::open(backend, &pass)?)),
        }
    }

    /// The key for `target`: a key file (`--key-file`, or the plan's
    /// `key_file` unless a passphrase is given), else the passphrase.
    pub fn key(&self, target: &Target) -> Result<Key> {
        let key_file = self.global.key_file.clone().or(match &target.password {
            PasswordSource::KeyFile(f) if self.global.password_file.is_none() && std::env::var_os("REPRISE_PASSWORD").is_none() => Some(f.clone()),
            _ => None,
        });
        if let Some(file) = key_file {
            let bytes = Zeroizing::new(std::fs::read(&file).map_err(|e| unreadable_secret_file(&file, &e, "key file", "--key-file, REPRISE_KEY_FILE, REPRISE_RECOVERY_KEY or the plan's key_file"))?);
            let secrets = Secrets::from_key_file(&bytes)
                .map_err(|e| exit::with_code(exit::AUTH, format!("{} is not a recovery key or write credential: {e}", file.display())))?;
            return Ok(Key::Secrets(secrets));
        }
        Ok(Key::Passphrase(self.passphrase(&target.password, &format!("passphrase for {}: ", target.url))?))
    }

    pub fn cache_dir(&self) -> PathBuf {
        if let Some(d) = &self.global.cache_dir {
            return d.clone();
        }
        if let Some(d) = self.plan.as_ref().and_then(|p| p.cache_dir.clone()) {
            return d;
        }
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(x).join("reprise");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".cache/reprise");
        }
        std::env::temp_dir().join("reprise-cache")
    }

    // ---- output ----

    pub fn json(&self) -> bool {
        self.global.json
    }

    /// A line for humans (suppressed by --json and --quiet).
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.global.json && !self.global.quiet {
            outln!("{}", text.as_ref());
        }
    }

    #[allow(clippy::unused_self, reason = "output goes through the context, like `say`")]
    pub fn print_json(&self, value: &impl serde::Serialize) -> Result<()> {
        crate::output::json(value)
    }

    /// A progress bar on an interactive terminal, nothing otherwise.
    pub fn progress(&self, label: &str) -> Arc<dyn Progress> {
        if self.global.json || self.global.quiet || !std::io::stderr().is_terminal() {
            return Arc::new(reprise_engine::NoProgress);
        }
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        Arc::new(Bar(bar))
    }
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn set_total(&self, bytes: u64, _items: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64, _items: u64) {
        self.0.inc(bytes);
    }
    fn note(&self, message: &str) {
        self.0.println(message);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn read_password_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| unreadable_secret_file(path, &e, "passphrase file", "--password-file, REPRISE_PASSWORD_FILE or the plan's password_file"))?,
    );
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(exit::usage(format!("passphrase file {} is empty: write the passphrase on its first line", path.display())));
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// A passphrase or key file that cannot be read: what is wrong, and where
/// the name came from (`named_by`), so it can be corrected.
fn unreadable_secret_file(path: &Path, e: &std::io::Error, what: &str, named_by: &str) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => exit::with_code(
            exit::PERMISSION,
            format!("cannot read {what} {}: permission denied; fix: make it readable by the account running reprise (owner, mode 0600)", path.display()),
        ),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
            exit::with_code(exit::NOT_FOUND, format!("{what} {} does not exist; fix: correct the path given by {named_by}", path.display()))
        }
        std::io::ErrorKind::IsADirectory => exit::usage(format!("{what} {} is a directory; fix: give the file itself ({named_by})", path.display())),
        _ => exit::with_code(exit::ERROR, format!("cannot read {what} {}: {e}", path.display())),
    }
}

fn prompt_password(prompt: &str) -> Result<Zeroizing<Vec<u8>>> {
    if !std::io::stdin().is_terminal() {
        return Err(exit::usage(
            "no passphrase: set REPRISE_PASSWORD_FILE (or REPRISE_PASSWORD), pass --password-file, or set password_file in the plan",
        ));
    }
    let p = rpassword::prompt_password(prompt).context("cannot read the passphrase from the terminal")?;
    Ok(Zeroizing::new(p.into_bytes()))
}

/// A new passphrase (for init, key add, key passwd): from a file, from
/// REPRISE_NEW_PASSWORD, or asked twice on the terminal.
pub fn new_passphrase(file: Option<&Path>, fallback_env: &str) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(f) = file {
        return read_password_file(f);
    }
    if let Some(v) = std::env::var_os(fallback_env) {
        return Ok(Zeroizing::new(std::os::unix::ffi::OsStringExt::into_vec(v)));
    }
    if !std::io::stdin().is_terminal() {
        return Err(exit::usage(format!("no new passphrase: set {fallback_env} or pass a passphrase file")));
    }
    let a = rpassword::prompt_password("new passphrase: ")?;
    let b = rpassword::prompt_password("repeat it: ")?;
    if a != b {
        return Err(exit::usage("the two passphrases differ: nothing was changed"));
    }
    Ok(Zeroizing::new(a.into_bytes()))
}

pub fn kdf(args: &KdfArgs) -> KdfParams {
    let d = KdfParams::default();
    KdfParams { memory_kib: args.kdf_memory.unwrap_or(d.memory_kib), iterations: args.kdf_iterations.unwrap_or(d.iterations), parallelism: d.parallelism }
}
