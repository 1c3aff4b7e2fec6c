//! Where secrets come from: passphrases and storage credentials, per
//! repository.
//!
//! The plan names a *place* (an environment variable, a file, a program to
//! run), never a value, and never does a secret pass through a command
//! line. One process can then hold a different identity per repository: a
//! `copy` from one provider to another, or a daemon serving several
//! accounts. Rules, each because of a way secrets leak:
//!
//! * A credentials file readable by group or others is refused, as ssh
//!   refuses such a private key: it has already leaked to every account
//!   on the host.
//! * A program is run from its argument vector, never through a shell
//!   (no quoting mistakes, no injection from a plan value), with no
//!   standard input, and for a bounded time. Its standard error is not
//!   repeated in our errors: a secrets manager's diagnostics can hold the
//!   secret or a token.
//! * Values never appear in messages: errors name the source and the
//!   variable, not what was read.
//! * The environment is read once, when the [`Environment`] is captured:
//!   a long-running process does not change identity because something
//!   else changed its environment.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reprise_engine::backends::Credentials;
use reprise_plan::CredentialSource;
use zeroize::Zeroizing;

use crate::error::{Category, OpsError, Result};

/// How long a secrets program may take before it is stopped.
pub const COMMAND_TIMEOUT: Duration = Duration::from_mins(1);

/// The process environment, captured once.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<OsString, OsString>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values are secrets.
        let mut names: Vec<_> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Environment").field("names", &names).finish()
    }
}

impl Environment {
    /// This process's environment, now.
    #[must_use]
    pub fn from_process() -> Environment {
        Environment { vars: std::env::vars_os().collect() }
    }

    /// An environment of the given variables only (tests, a daemon that
    /// builds each repository's environment itself).
    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(pairs: impl IntoIterator<Item = (K, V)>) -> Environment {
        Environment { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// A variable's value; empty counts as unset.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str).filter(|v| !v.is_empty())
    }

    /// A variable's value as text (credentials are text).
    #[must_use]
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| v.to_str()).map(str::to_owned)
    }

    /// The storage credentials of the environment itself.
    #[must_use]
    pub fn credentials(&self) -> Credentials {
        Credentials::from_lookup(|n| self.get_str(n))
    }
}

/// Reads the storage credentials a repository's plan entry points to
/// (`None`: the environment's own).
pub fn credentials(repository: &str, source: Option<&CredentialSource>, env: &Environment) -> Result<Credentials> {
    match source {
        None => Ok(env.credentials()),
        Some(CredentialSource::EnvPrefix(prefix)) => {
            let creds = Credentials::from_lookup(|n| env.get_str(&format!("{prefix}{n}")));
            if Credentials::NAMES.iter().all(|n| env.get(&format!("{prefix}{n}")).is_none()) {
                return Err(OpsError::usage(format!(
                    "repository '{repository}' takes its storage credentials from variables starting with {prefix} (credentials_env_prefix), and none is set: export {prefix}AWS_ACCESS_KEY_ID and {prefix}AWS_SECRET_ACCESS_KEY (or {prefix}AZURE_STORAGE_ACCOUNT_KEY / {prefix}AZURE_STORAGE_SAS_TOKEN)"
                )));
            }
            Ok(creds)
        }
        Some(CredentialSource::File(path)) => {
            let what = format!("credentials file of repository '{repository}'");
            let text = read_private_file(path, &what, "credentials_file in the plan")?;
            parse_pairs(&text, &format!("{what} {}", path.display()))
        }
        Some(CredentialSource::Command(argv)) => {
            let what = format!("credentials_command of repository '{repository}'");
            let out = run_secret_command(argv, &what)?;
            parse_pairs(&out, &what)
        }
    }
}

/// `NAME=VALUE` lines (blank lines and `#` comments allowed; `export `
/// accepted, so that a shell-style env file works as is). Unknown names
/// are refused, by name: a misspelt variable would otherwise fall back to
/// no credential in silence.
fn parse_pairs(text: &[u8], what: &str) -> Result<Credentials> {
    let text = std::str::from_utf8(text).map_err(|_| OpsError::usage(format!("{what} is not text: write NAME=VALUE lines")))?;
    let mut values: HashMap<&str, String> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(OpsError::usage(format!("{what}, line {}: not NAME=VALUE; write e.g. AWS_ACCESS_KEY_ID=...", i + 1)));
        };
        let name = name.trim();
        let Some(known) = Credentials::NAMES.iter().find(|n| **n == name) else {
            return Err(OpsError::usage(format!("{what}, line {}: unknown name {name}; use {}", i + 1, Credentials::NAMES.join(", "))));
        };
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        values.insert(known, value.to_owned());
    }
    if values.is_empty() {
        return Err(OpsError::usage(format!("{what} holds no credential: write AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... (or AZURE_STORAGE_ACCOUNT_KEY=...)")));
    }
    Ok(Credentials::from_lookup(|n| values.get(n).cloned()))
}

/// A file holding a secret, refused if group or others can read it.
pub fn read_private_file(path: &Path, what: &str, named_by: &str) -> Result<Zeroizing<Vec<u8>>> {
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, &e, what, named_by))?;
    if meta.is_dir() {
        return Err(OpsError::usage(format!("{what} {} is a directory; fix: give the file itself ({named_by})", path.display())));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(OpsError::new(
            Category::Permission,
            format!("{what} {} can be read by other accounts (mode {mode:04o}); fix: chmod 600 {}, and replace the secrets it held (they may have leaked)", path.display(), path.display()),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(path, &e, what, named_by))?;
    Ok(Zeroizing::new(bytes))
}

/// A passphrase or key file that cannot be read: what is wrong, and where
/// its name came from (`named_by`), so that it can be corrected.
#[must_use]
pub fn unreadable(path: &Path, e: &std::io::Error, what: &str, named_by: &str) -> OpsError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => OpsError::new(
            Category::Permission,
            format!("cannot read {what} {}: permission denied; fix: make it readable by the account running reprise (owner, mode 0600)", path.display()),
        ),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
            OpsError::not_found(format!("{what} {} does not exist; fix: correct the path given by {named_by}", path.display()))
        }
        std::io::ErrorKind::IsADirectory => OpsError::usage(format!("{what} {} is a directory; fix: give the file itself ({named_by})", path.display())),
        _ => OpsError::new(Category::Other, format!("cannot read {what} {}: {e}", path.display())),
    }
}

/// The first line of a passphrase file (a trailing `\r` dropped).
pub fn first_line(bytes: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(OpsError::usage(format!("{what} is empty: write the passphrase on its first line")));
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// Runs a secrets program and returns its standard output. Bounded in
/// time; its standard error is read (so that it cannot block) and dropped.
pub fn run_secret_command(argv: &[String], what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let Some((program, rest)) = argv.split_first() else {
        return Err(OpsError::usage(format!("{what} is empty: give the program and its arguments")));
    };
    let mut child = Command::new(program).args(rest).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
        let category = if e.kind() == std::io::ErrorKind::NotFound { Category::NotFound } else { Category::Other };
        OpsError::new(category, format!("cannot run {what} ({program}): {e}; fix the program path in the plan"))
    })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::new());
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut sink = Zeroizing::new(Vec::new());
        let _ = stderr.read_to_end(&mut sink);
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait()? {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(OpsError::new(Category::Unavailable, format!("{what} ({program}) did not finish within {}s: stopped; check that it runs without a terminal", COMMAND_TIMEOUT.as_secs())));
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let _ = err_reader.join();
    if !status.success() {
        return Err(OpsError::new(
            Category::Authentication,
            format!("{what} ({program}) failed ({status}); its error output is not shown, as it could hold secrets: run it by hand as this account to see why"),
        ));
    }
    Ok(out)
}

/// The passphrase from the first line of a program's output.
pub fn passphrase_from_command(argv: &[String], repository: &str) -> Result<Zeroizing<Vec<u8>>> {
    let what = format!("password_command of repository '{repository}'");
    let out = run_secret_command(argv, &what)?;
    first_line(&out, &format!("the output of {what}"))
}

/// The passphrase from an environment variable the plan names.
pub fn passphrase_from_env(env: &Environment, var: &str) -> Result<Zeroizing<Vec<u8>>> {
    env.get(var).map(|v| Zeroizing::new(v.as_bytes().to_vec())).ok_or_else(|| {
        OpsError::usage(format!("the plan reads the passphrase from ${var}, which is not set: export it, or use --password-file"))
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// The bug this pins: a credentials file any account could read was
    /// used as is.
    #[test]
    fn a_credentials_file_readable_by_others_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = file(d.path(), "creds", "AWS_ACCESS_KEY_ID=id\nAWS_SECRET_ACCESS_KEY=s3cr3t-value\n", 0o644);
        let e = credentials("offsite", Some(&CredentialSource::File(p.clone())), &Environment::default()).unwrap_err();
        assert_eq!(e.category(), Category::Permission);
        let m = e.to_string();
        assert!(m.contains("chmod 600") && m.contains("0644") && !m.contains("s3cr3t"), "{m}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = credentials("offsite", Some(&CredentialSource::File(p)), &Environment::default()).unwrap();
        assert_eq!(c.aws_access_key_id.as_deref(), Some("id"));
        assert_eq!(c.aws_secret_access_key.as_deref(), Some("s3cr3t-value"));
    }

    #[test]
    fn a_misspelt_name_is_refused_without_echoing_values() {
        let d = tempfile::tempdir().unwrap();
        let p = file(d.path(), "creds", "# offsite\nexport AWS_ACCESS_KEY=id\n", 0o600);
        let e = credentials("offsite", Some(&CredentialSource::File(p)), &Environment::default()).unwrap_err();
        assert!(e.to_string().contains("unknown name AWS_ACCESS_KEY") && e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn env_prefix_reads_its_own_variables_only() {
        let env = Environment::from_pairs([("OFF_AWS_ACCESS_KEY_ID", "a"), ("OFF_AWS_SECRET_ACCESS_KEY", "b"), ("AWS_ACCESS_KEY_ID", "process")]);
        let c = credentials("offsite", Some(&CredentialSource::EnvPrefix("OFF_".into())), &env).unwrap();
        assert_eq!((c.aws_access_key_id.as_deref(), c.aws_secret_access_key.as_deref()), (Some("a"), Some("b")));
        let e = credentials("offsite", Some(&CredentialSource::EnvPrefix("NONE_".into())), &env).unwrap_err();
        assert!(e.to_string().contains("NONE_AWS_ACCESS_KEY_ID"), "{e}");
    }

    /// A secrets program's error output can hold the secret: it is never
    /// repeated in the error.
    #[test]
    fn a_failing_secrets_program_does_not_echo_its_stderr() {
        let argv: Vec<String> = ["sh", "-c", "echo leaked-token >&2; exit 3"].map(String::from).to_vec();
        let e = credentials("offsite", Some(&CredentialSource::Command(argv)), &Environment::default()).unwrap_err();
        assert!(!e.to_string().contains("leaked-token") && e.to_string().contains("run it by hand"), "{e}");
        let ok: Vec<String> = ["sh", "-c", "printf 'AWS_ACCESS_KEY_ID=x\\nAWS_SECRET_ACCESS_KEY=y\\n'"].map(String::from).to_vec();
        let c = credentials("offsite", Some(&CredentialSource::Command(ok)), &Environment::default()).unwrap();
        assert_eq!(c.aws_secret_access_key.as_deref(), Some("y"));
        let pass: Vec<String> = ["printf", "pw\\nignored"].map(String::from).to_vec();
        assert_eq!(&passphrase_from_command(&pass, "r").unwrap()[..], b"pw");
    }
}
