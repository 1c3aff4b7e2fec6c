//! The `reprise` binary: parse flags, run one command, map the outcome to
//! an exit code. Everything else lives in the library crates.

#[macro_use]
mod output;
mod args;
mod commands;
mod context;
mod exit;

use std::process::ExitCode;

use clap::Parser;
use reprise_engine::CancelToken;

use crate::args::{Cli, Command};
use crate::context::Context;

fn main() -> ExitCode {
    // Known before parsing, so that a usage error honours it too.
    let json = wants_json(std::env::args_os());
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(&e, json),
    };
    // The README's name for the key file variable; `--key-file` and
    // REPRISE_KEY_FILE win when given.
    if cli.global.key_file.is_none() {
        cli.global.key_file = std::env::var_os("REPRISE_RECOVERY_KEY").filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    }
    init_logging(cli.global.verbose, cli.global.quiet);
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        let mut hits = 0;
        let _ = ctrlc::set_handler(move || {
            hits += 1;
            if hits > 1 {
                errln!("reprise: interrupted again, stopping the servers it started and exiting now");
                reprise_postgres::cluster::stop_all();
                // No destructor runs on this exit: a drill's restored copy
                // (health data) is removed here or it would linger.
                for p in reprise_ops::drill::remove_scratch_now() {
                    errln!("reprise: removed the drill's scratch copy {}", p.display());
                }
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
            errln!("reprise: interrupting: finishing what is in flight (Ctrl-C again to stop at once)");
            cancel.cancel();
        });
    }
    let json = cli.global.json;
    let result = run(cli, cancel).and_then(|()| match output::write_failure() {
        // The command worked but its report was lost: not a success.
        Some(e) => Err(exit::with_code(exit::ERROR, format!("cannot write the output: {e}; free space where stdout goes, or run the command again"))),
        None => Ok(()),
    });
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            let code = exit::code_of(&e);
            // One line: the outermost message already carries the cause and
            // the fix; anyhow's chain is for -v.
            errln!("reprise: {e}");
            tracing::debug!("{e:?}");
            // One JSON document on stdout: the error object, unless the
            // command already printed its report (the exit code says it failed).
            if json && !output::json_printed() {
                error_json(&e.to_string(), code);
            }
            ExitCode::from(code)
        }
    }
}

/// Whether `--json` is among the arguments (before a `--` that ends options).
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

fn error_json(message: &str, code: u8) {
    let _ = output::json(&serde_json::json!({ "error": { "message": message, "exit_code": code } }));
}

/// Reports a command line clap refused: `--help` and `--version` are not
/// errors; a missing command prints the help (the list of commands) and
/// exits 2; anything else is one line naming what is wrong (the missing
/// arguments, the unknown one, clap's tip) and the usage.
fn usage_error(e: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::from(exit::OK);
    }
    let message = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        "a command is needed: choose one of those listed above".to_owned()
    } else if e.kind() == ErrorKind::MissingSubcommand {
        // `reprise --repo R` or `reprise key`: the help of that command,
        // whose list of subcommands is the answer.
        let path = match e.get(clap::error::ContextKind::InvalidSubcommand) {
            Some(clap::error::ContextValue::String(p)) => p.clone(),
            _ => String::new(),
        };
        let mut command = <Cli as clap::CommandFactory>::command();
        for name in path.split_whitespace().skip(1) {
            match command.find_subcommand(name) {
                Some(sub) => command = sub.clone(),
                None => break,
            }
        }
        errln!("{}", command.render_help());
        "a command is needed: choose one of those listed above".to_owned()
    } else {
        one_line(&e.render().to_string())
    };
    errln!("reprise: {message}");
    if json {
        error_json(&message, exit::USAGE);
    }
    ExitCode::from(exit::USAGE)
}

/// clap's multi-line error as one line, nothing dropped but the pointer
/// to `--help` (replaced by the subcommand's own).
fn one_line(rendered: &str) -> String {
    let mut head = String::new();
    let mut items = Vec::new();
    let mut tips = Vec::new();
    let mut usage = String::new();
    for line in rendered.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("For more information") {
            continue;
        }
        if let Some(u) = trimmed.strip_prefix("Usage: ") {
            u.clone_into(&mut usage);
        } else if let Some(t) = trimmed.strip_prefix("tip: ") {
            tips.push(t.to_owned());
        } else if head.is_empty() {
            trimmed.strip_prefix("error: ").unwrap_or(trimmed).clone_into(&mut head);
        } else {
            items.push(trimmed.to_owned());
        }
    }
    let mut out = head;
    if !items.is_empty() {
        let sep = if out.ends_with(':') { " " } else { ": " };
        out = format!("{out}{sep}{}", items.join(", "));
    }
    for t in tips {
        out.push_str("; ");
        out.push_str(&t);
    }
    // `reprise restore --to <DIR> <WHAT>` → `reprise restore --help`.
    let command: Vec<&str> = usage.split_whitespace().take_while(|w| !w.starts_with(['-', '<', '['])).collect();
    let help = if command.is_empty() { "reprise --help".to_owned() } else { format!("{} --help", command.join(" ")) };
    if usage.is_empty() { format!("{out} (see `{help}`)") } else { format!("{out}; usage: {usage} (see `{help}`)") }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPRISE_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only for a person at a terminal: log lines also land in files,
    // pipes and PostgreSQL's server log (wal-push), where escape codes are
    // noise; NO_COLOR (no-color.org) turns it off everywhere.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).with_target(false).without_time().init();
}

fn run(cli: Cli, cancel: CancelToken) -> anyhow::Result<()> {
    // Commands that need no plan or repository first.
    match &cli.command {
        Command::Plan(cmd) => return commands::plan::run(&cli.global, cli.global.json, cmd, &cancel),
        Command::Demo(args) => return commands::demo::run(&cli.global, args, &cancel),
        Command::WalFetch(args) => return commands::postgres::wal_fetch(&cli.global, args, &cancel),
        Command::Ledger(cmd) => {
            if let Some(done) = commands::ledger::without_repository(&cli.global, cmd) {
                return done;
            }
        }
        _ => {}
    }
    let ctx = Context::new(cli.global, cancel)?;
    match &cli.command {
        Command::Init(a) => commands::keys::init(&ctx, a),
        Command::Key(k) => commands::keys::run(&ctx, k),
        Command::Backup(a) => commands::backup::run(&ctx, a),
        Command::Snapshots(a) => commands::inspect::snapshots(&ctx, a),
        Command::Ls(a) => commands::inspect::ls(&ctx, a),
        Command::Diff(a) => commands::inspect::diff(&ctx, a),
        Command::Restore(a) => commands::restore::run(&ctx, a),
        Command::Check(a) => commands::check::run(&ctx, a),
        Command::Stats(_) => commands::inspect::stats(&ctx),
        Command::WalPush(a) => commands::postgres::wal_push(&ctx, a),
        Command::RecoverRows(a) => commands::postgres::recover_rows(&ctx, a),
        Command::WalStream(a) => commands::postgres::wal_stream(&ctx, a),
        Command::Status(a) => commands::status::run(&ctx, a),
        Command::Forget(a) => commands::retention::forget(&ctx, a),
        Command::Hold(c) => commands::retention::hold(&ctx, c),
        Command::Copy(a) => commands::copy::run(&ctx, a),
        Command::Prune(a) => commands::retention::prune(&ctx, a),
        Command::Repair(c) => commands::repair::run(&ctx, c),
        Command::Ledger(c) => commands::ledger::run(&ctx, c),
        Command::Drill(c) => commands::drill::run(&ctx, c),
        Command::Plan(_) | Command::Demo(_) | Command::WalFetch(_) => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The bug: `--help` listed `diff FROM TO`, `restore --threads`, `key
    /// add --label`, `--new-password-file` and others with no description.
    #[test]
    fn every_argument_of_every_command_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && path != "reprise help" {
                missing.push(format!("{path} (the command itself)"));
            }
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if a.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "reprise", &mut missing);
        assert!(missing.is_empty(), "arguments without a description: {missing:#?}");
    }

    /// Every damage message names a command, and that command exists
    /// (`reprise repair index`, not advice that repeats itself).
    #[test]
    fn every_command_a_damage_message_names_exists() {
        use reprise_engine::format::FormatError;
        let objects = ["config", "index/ab", "prune/ab", "snapshots/ab", "keys/ab", "holds/ab", "wal/db/0000000100000000/000000010000000000000001", "data/ab/abcd", "data blob ab"];
        let mut messages: Vec<String> =
            objects.iter().map(|o| reprise_engine::Error::Damaged { object: (*o).to_owned(), source: FormatError::Malformed("x".into()) }.to_string()).collect();
        messages.push(commands::plan::NO_PLAN.to_owned());
        let root = Cli::command();
        for m in &messages {
            let named: Vec<&str> = m.split('`').skip(1).step_by(2).filter(|c| c.starts_with("reprise ")).collect();
            assert!(!named.is_empty(), "names no command: {m}");
            for c in named {
                let mut cmd = &root;
                for word in c.split_whitespace().skip(1).take_while(|w| !w.starts_with('-') && w.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-')) {
                    cmd = cmd.find_subcommand(word).unwrap_or_else(|| panic!("`{c}` in \"{m}\": no such command"));
                }
            }
        }
        // And none of them sends the reader back to the command that failed.
        let config = &messages[0];
        assert!(!config.contains("reprise check"), "{config}");
    }

    #[test]
    fn usage_errors_are_one_line_with_the_missing_arguments() {
        let e = Cli::try_parse_from(["reprise", "restore", "latest"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(!line.contains('\n') && line.contains("--to <DIR>") && line.contains("reprise restore --help"), "{line}");
    }
}
