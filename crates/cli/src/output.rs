//! Everything the binary prints goes through here.
//!
//! Output often goes to a pipe that closes early (`reprise snapshots | head
//! -1`). A closed pipe is the reader's choice, not a failure of the command:
//! output stops quietly and the command ends with its own exit code (a
//! `check` piped into `head` still exits 6 on damage). Any other failure to
//! write (a full disk under `> report.txt`) is remembered, and turns what
//! would have been success into an error, because the report was lost.
//!
//! `--json` promises one document on stdout: [`json`] records that the
//! command printed its own, and `main` prints an error object only when it
//! did not.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);
static WRITE_FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// One line on stdout (the `outln!` macro).
pub fn stdout_line(args: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush());
    if let Err(e) = written {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            WRITE_FAILURE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert_with(|| e.to_string());
        }
    }
}

/// One line on stderr (the `errln!` macro). A stderr that cannot be
/// written to leaves nowhere to report anything: ignored.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// The command's JSON document on stdout.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    stdout_line(format_args!("{text}"));
    JSON_PRINTED.store(true, Ordering::Relaxed);
    Ok(())
}

/// A whole document on stdout as it is (a rendered report), with the
/// same closed-pipe rule as lines.
pub fn raw(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            WRITE_FAILURE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert_with(|| e.to_string());
        }
    }
}

/// Whether the command already printed its JSON document.
pub fn json_printed() -> bool {
    JSON_PRINTED.load(Ordering::Relaxed)
}

/// Why stdout could not be written, other than a reader closing it.
pub fn write_failure() -> Option<String> {
    WRITE_FAILURE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::stdout_line(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::stderr_line(format_args!($($arg)*)) };
}

/// A file name (bytes) for a terminal, losslessly: control characters and
/// bytes that are not UTF-8 are escaped (`\n`, `\x1b`, `\xff`), and so is
/// the backslash itself, so that every name prints on one line and two
/// different names never print the same.
pub fn escape_name(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The bytes in base64 when they are not UTF-8 (JSON strings are text: a
/// name that is not is given this way too, so nothing is lost).
pub fn bytes_if_not_utf8(bytes: &[u8]) -> Option<String> {
    use base64::Engine as _;
    std::str::from_utf8(bytes).is_err().then(|| base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `n thing` or `n things`: counts in messages read as English.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}
