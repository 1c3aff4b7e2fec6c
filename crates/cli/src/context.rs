//! From raw flags to what commands need: the flags become the
//! `reprise_ops::Workspace`'s settings (which repository, which passphrase
//! or key file, which cache), the terminal becomes its passphrase prompt
//! and progress bars; the output mode stays here.
//!
//! Precedence everywhere: command line > environment (`REPRISE_*`, which
//! clap folds into the flags) > plan file > built-in default.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use reprise_engine::format::keys::KdfParams;
use reprise_engine::{CancelToken, Progress};
use reprise_ops::workspace::Prompt;
use reprise_ops::{Environment, Observer, OpsError, Settings, Workspace};
use reprise_plan::Plan;
use zeroize::Zeroizing;

use crate::args::{Global, KdfArgs};
use crate::exit;

/// A command's world: its flags, the workspace (plan, repositories,
/// secrets) and the cancellation token Ctrl-C sets.
pub struct Context {
    pub global: Global,
    pub ws: Workspace,
    pub cancel: CancelToken,
}

impl Context {
    pub fn new(global: Global, cancel: CancelToken) -> Result<Context> {
        let plan = match &global.plan {
            Some(p) => Some(Plan::load(p)?),
            None => reprise_plan::default_locations().into_iter().find(|p| p.exists()).map(|p| Plan::load(&p)).transpose()?,
        };
        let settings = Settings {
            repository: global.repo.clone(),
            password_file: global.password_file.clone(),
            key_file: global.key_file.clone(),
            cache_dir: global.cache_dir.clone(),
            witness: global.witness.clone(),
        };
        let ws = Workspace::new(plan, settings, Environment::from_process()).with_prompt(Box::new(TerminalPrompt));
        Ok(Context { global, ws, cancel })
    }

    /// Progress bars for the operations this command runs.
    pub fn observer(&self) -> Bars {
        Bars { enabled: !self.global.json && !self.global.quiet && std::io::stderr().is_terminal() }
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

}

/// Progress bars on an interactive terminal, nothing otherwise.
pub struct Bars {
    enabled: bool,
}

impl Observer for Bars {
    /// Printed even under `--json` and `--quiet`: on stderr, before the
    /// operation's outcome, because it may change what the operator does.
    fn warning(&self, warning: &reprise_ops::Warning) {
        errln!("reprise: warning: {}", crate::commands::render_warning(warning));
    }

    fn phase(&self, label: &str) -> Arc<dyn Progress> {
        if !self.enabled {
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

/// Asks on the terminal, when there is one.
struct TerminalPrompt;

impl Prompt for TerminalPrompt {
    fn passphrase(&self, prompt: &str) -> reprise_ops::Result<Zeroizing<Vec<u8>>> {
        if !std::io::stdin().is_terminal() {
            return Err(OpsError::usage(
                "no passphrase: set REPRISE_PASSWORD_FILE (or REPRISE_PASSWORD), pass --password-file, or set password_file in the plan",
            ));
        }
        let p = rpassword::prompt_password(prompt).map_err(|e| OpsError::new(reprise_ops::Category::Other, format!("cannot read the passphrase from the terminal: {e}")))?;
        Ok(Zeroizing::new(p.into_bytes()))
    }
}

/// A new passphrase (for init, key add, key passwd): from a file, from
/// REPRISE_NEW_PASSWORD, or asked twice on the terminal.
pub fn new_passphrase(file: Option<&Path>, fallback_env: &str) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(f) = file {
        return Ok(reprise_ops::workspace::read_password_file(f)?);
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
