//! The workspace: a plan, the settings that override it, and the
//! repositories opened for it, each opened once.
//!
//! Opening a repository with a passphrase runs Argon2id, on purpose slow
//! (about a second, a quarter of a GiB of memory). A command that touches
//! a repository for several reasons (`status`: the 3-2-1 posture, the
//! recovery point, the PITR window, immutability) used to open it once per
//! reason; a daemon serving many repositories for days would pay it on
//! every scheduled run. Here each repository is opened once per workspace
//! and shared as an `Arc<Repository>`, keyed by its URL and the storage
//! lock set on what it writes (a write with another lock needs another
//! backend, but not another key derivation: the keys found the first time
//! are reused).
//!
//! Everything is resolved from data given at construction: the plan, the
//! [`Settings`] (what a command line or a daemon's configuration says), and
//! an [`Environment`] captured once. No global state, no environment read
//! afterwards; the terminal, if any, is behind the [`Prompt`] the
//! interface passes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use reprise_engine::Repository;
use reprise_engine::backends::{self, Backend, BackendError, Credentials, Lock};
use reprise_engine::format::keys::Secrets;
use reprise_plan::{ComponentPlan, CredentialSource, PasswordSource, Plan};
use zeroize::Zeroizing;

use crate::error::{Category, OpsError, Result};
use crate::secrets::{self, Environment};

/// What to say when a command needs a plan and none was found.
pub const NO_PLAN: &str = "no plan found: pass --plan FILE (or REPRISE_PLAN), or write ./reprise.toml (`reprise plan init` writes a starter plan)";

/// What the interface decided, overriding the plan (command line > environment > plan).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The repository to work on: a plan repository name, or a URL.
    pub repository: Option<String>,
    /// A passphrase file that wins over every plan source.
    pub password_file: Option<PathBuf>,
    /// A key file (recovery key or write credential) that wins over every
    /// passphrase.
    pub key_file: Option<PathBuf>,
    /// Where local caches go (files cache, WAL stream spool).
    pub cache_dir: Option<PathBuf>,
    /// The ledger witness, over the plan's `[ledger] witness`.
    pub witness: Option<String>,
}

/// Asks a person for a passphrase. The CLI asks on the terminal; a daemon
/// has nobody to ask and uses [`NoPrompt`].
pub trait Prompt: Send + Sync {
    fn passphrase(&self, prompt: &str) -> Result<Zeroizing<Vec<u8>>>;
}

/// Nobody to ask: the plan must name a passphrase source.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPrompt;

impl Prompt for NoPrompt {
    fn passphrase(&self, prompt: &str) -> Result<Zeroizing<Vec<u8>>> {
        Err(OpsError::usage(format!("no passphrase ({}): name a source in the plan (password_file, password_env or password_command)", prompt.trim_end_matches([':', ' ']))))
    }
}

/// Opens the storage a URL names. The default is [`backends::open_with`];
/// tests wrap it (to count key reads, to serve memory backends).
pub trait Storage: Send + Sync {
    fn open(&self, url: &str, lock: Option<Lock>, credentials: &Credentials) -> Result<Arc<dyn Backend>, BackendError>;
}

/// Local directories, S3 and Azure Blob Storage, by URL.
#[derive(Debug, Default, Clone, Copy)]
pub struct UrlStorage;

impl Storage for UrlStorage {
    fn open(&self, url: &str, lock: Option<Lock>, credentials: &Credentials) -> Result<Arc<dyn Backend>, BackendError> {
        backends::open_with(url, lock, credentials)
    }
}

/// Which repository, and where its secrets come from.
#[derive(Debug, Clone)]
pub struct Target {
    /// The plan's name for it, when it has one.
    pub name: Option<String>,
    pub url: String,
    pub password: PasswordSource,
    pub credentials: Option<CredentialSource>,
}

/// What opens a repository.
pub enum Key {
    Secrets(Secrets),
    Passphrase(Zeroizing<Vec<u8>>),
}

/// The plan, the settings, and the repositories opened so far.
pub struct Workspace {
    plan: Option<Plan>,
    settings: Settings,
    env: Environment,
    prompt: Box<dyn Prompt>,
    storage: Box<dyn Storage>,
    /// Opened repositories by (URL, storage lock).
    open: Mutex<HashMap<(String, String), Arc<Repository>>>,
    /// The keys found for each URL, so that a second backend (another
    /// lock) opens without another key derivation.
    keys: Mutex<HashMap<String, Secrets>>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace").field("plan", &self.plan.as_ref().map(|p| &p.file)).field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Workspace {
    #[must_use]
    pub fn new(plan: Option<Plan>, settings: Settings, env: Environment) -> Workspace {
        Workspace { plan, settings, env, prompt: Box::new(NoPrompt), storage: Box::new(UrlStorage), open: Mutex::default(), keys: Mutex::default() }
    }

    #[must_use]
    pub fn with_prompt(self, prompt: Box<dyn Prompt>) -> Workspace {
        Workspace { prompt, ..self }
    }

    #[must_use]
    pub fn with_storage(self, storage: Box<dyn Storage>) -> Workspace {
        Workspace { storage, ..self }
    }

    /// The plan, if one was found.
    #[must_use]
    pub fn plan_if_any(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    pub fn plan(&self) -> Result<&Plan> {
        self.plan.as_ref().ok_or_else(|| OpsError::not_found(NO_PLAN))
    }

    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    #[must_use]
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    pub fn component(&self, name: &str) -> Result<&ComponentPlan> {
        self.plan()?.component(name).map_err(OpsError::not_found)
    }

    /// A component the plan declares, if any (no plan: none).
    #[must_use]
    pub fn component_if_declared(&self, name: &str) -> Option<&ComponentPlan> {
        self.plan.as_ref().and_then(|p| p.components.get(name))
    }

    fn plan_target(&self, name: &str) -> Option<Target> {
        self.plan.as_ref().and_then(|p| p.repositories.get(name)).map(|r| Target {
            name: Some(r.name.clone()),
            url: r.url.clone(),
            password: r.password.clone(),
            credentials: r.credentials.clone(),
        })
    }

    /// The repository to use: the settings' (a plan name or a URL), else
    /// the component's, else the plan's only repository that is not a copy.
    pub fn target(&self, component: Option<&ComponentPlan>) -> Result<Target> {
        if let Some(r) = &self.settings.repository {
            return Ok(self.plan_target(r).unwrap_or_else(|| Target { name: None, url: r.clone(), password: PasswordSource::Prompt, credentials: None }));
        }
        if let Some(c) = component {
            return self.plan_target(&c.repository).ok_or_else(|| OpsError::usage(format!("component '{}' names unknown repository '{}'", c.name, c.repository)));
        }
        // The plan's only repository, or its only original (copies are
        // chosen explicitly, by name).
        if let Some(plan) = &self.plan {
            let originals: Vec<&String> = plan.repositories.values().filter(|r| r.copy_of.is_none()).map(|r| &r.name).collect();
            if let [name] = originals.as_slice() {
                return Ok(self.plan_target(name).expect("exists"));
            }
        }
        Err(OpsError::usage("which repository? pass --repo NAME|URL (or set REPRISE_REPO), or declare exactly one repository in the plan"))
    }

    /// A repository the plan declares, by name, whatever the settings say
    /// (`copy` and `status` work on several repositories at once).
    pub fn named_target(&self, name: &str) -> Result<Target> {
        let plan = self.plan()?;
        self.plan_target(name).ok_or_else(|| {
            let known: Vec<_> = plan.repositories.keys().map(String::as_str).collect();
            OpsError::usage(format!(
                "the plan declares no repository '{name}': declare it under [repositories.{name}] (url, passphrase source, copy_of), or use one of: {}",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        })
    }

    /// A plan repository by name, or else a URL (`repair config --from`).
    #[must_use]
    pub fn target_by_name_or_url(&self, name_or_url: &str) -> Target {
        self.plan_target(name_or_url).unwrap_or_else(|| Target { name: None, url: name_or_url.to_owned(), password: PasswordSource::Prompt, credentials: None })
    }

    /// The storage credentials of `target`, from its plan source or the
    /// environment.
    pub fn credentials(&self, target: &Target) -> Result<Credentials> {
        secrets::credentials(target.name.as_deref().unwrap_or(&target.url), target.credentials.as_ref(), &self.env)
    }

    /// The backend of `target`, setting `lock` on the objects it creates.
    pub fn backend(&self, target: &Target, lock: Option<Lock>) -> Result<Arc<dyn Backend>> {
        let credentials = self.credentials(target)?;
        self.storage.open(&target.url, lock, &credentials).map_err(|e| {
            let category = match e.kind {
                backends::ErrorKind::PermissionDenied => Category::Permission,
                backends::ErrorKind::Unavailable => Category::Unavailable,
                _ => Category::Usage,
            };
            OpsError::new(category, e.message)
        })
    }

    /// The passphrase for `source`, from the first place that has one:
    /// the settings' file, `REPRISE_PASSWORD`, the plan's source, a person.
    pub fn passphrase(&self, target: &Target, prompt: &str) -> Result<Zeroizing<Vec<u8>>> {
        if let Some(file) = &self.settings.password_file {
            return read_password_file(file);
        }
        if let Some(v) = self.env.get("REPRISE_PASSWORD") {
            return Ok(Zeroizing::new(std::os::unix::ffi::OsStrExt::as_bytes(v).to_vec()));
        }
        match &target.password {
            PasswordSource::File(f) => read_password_file(f),
            PasswordSource::Env(var) => secrets::passphrase_from_env(&self.env, var),
            PasswordSource::Command(argv) => secrets::passphrase_from_command(argv, target.name.as_deref().unwrap_or(&target.url)),
            PasswordSource::Prompt | PasswordSource::KeyFile(_) => self.prompt.passphrase(prompt),
        }
    }

    /// The key for `target`: a key file (the settings', or the plan's
    /// `key_file` unless a passphrase is given), else the passphrase.
    pub fn key(&self, target: &Target) -> Result<Key> {
        let key_file = self.settings.key_file.clone().or(match &target.password {
            PasswordSource::KeyFile(f) if self.settings.password_file.is_none() && self.env.get("REPRISE_PASSWORD").is_none() => Some(f.clone()),
            _ => None,
        });
        if let Some(file) = key_file {
            let bytes = Zeroizing::new(
                std::fs::read(&file).map_err(|e| secrets::unreadable(&file, &e, "key file", "--key-file, REPRISE_KEY_FILE, REPRISE_RECOVERY_KEY or the plan's key_file"))?,
            );
            let secrets = Secrets::from_key_file(&bytes)
                .map_err(|e| OpsError::new(Category::Authentication, format!("{} is not a recovery key or write credential: {e}", file.display())))?;
            return Ok(Key::Secrets(secrets));
        }
        Ok(Key::Passphrase(self.passphrase(target, &format!("passphrase for {}: ", target.url))?))
    }

    /// The repository a component backs up to (or the settings' one),
    /// with the storage lock the component's objectives ask for.
    pub fn open(&self, component: Option<&ComponentPlan>) -> Result<Arc<Repository>> {
        let target = self.target(component)?;
        self.open_target(&target, component.and_then(crate::immutability::lock_for))
    }

    /// A plan repository by name (see [`Workspace::named_target`]).
    pub fn open_named(&self, name: &str) -> Result<Arc<Repository>> {
        let target = self.named_target(name)?;
        self.open_target(&target, None)
    }

    /// Opens `target` once per (URL, lock) for the life of the workspace.
    pub fn open_target(&self, target: &Target, lock: Option<Lock>) -> Result<Arc<Repository>> {
        let slot = (target.url.clone(), format!("{lock:?}"));
        if let Some(r) = self.open.lock().get(&slot) {
            return Ok(Arc::clone(r));
        }
        let backend = self.backend(target, lock)?;
        let known = self.keys.lock().get(&target.url).cloned();
        let repo = match known {
            Some(secrets) => Repository::open_with_secrets(backend, secrets)?,
            None => match self.key(target)? {
                Key::Secrets(secrets) => Repository::open_with_secrets(backend, secrets)?,
                Key::Passphrase(pass) => Repository::open(backend, &pass)?,
            },
        };
        self.keys.lock().insert(target.url.clone(), repo.secrets().clone());
        let repo = Arc::new(repo);
        Ok(Arc::clone(self.open.lock().entry(slot).or_insert(repo)))
    }

    /// Where local caches go: the settings', the plan's, `$XDG_CACHE_HOME`,
    /// `~/.cache`, or the temporary directory.
    #[must_use]
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(d) = &self.settings.cache_dir {
            return d.clone();
        }
        if let Some(d) = self.plan.as_ref().and_then(|p| p.cache_dir.clone()) {
            return d;
        }
        if let Some(x) = self.env.get("XDG_CACHE_HOME") {
            return PathBuf::from(x).join("reprise");
        }
        if let Some(h) = self.env.get("HOME") {
            return PathBuf::from(h).join(".cache/reprise");
        }
        std::env::temp_dir().join("reprise-cache")
    }
}

/// The first line of a passphrase file.
pub fn read_password_file(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| secrets::unreadable(path, &e, "passphrase file", "--password-file, REPRISE_PASSWORD_FILE or the plan's password_file"))?,
    );
    secrets::first_line(&bytes, &format!("passphrase file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Workspace>();
    }
}
