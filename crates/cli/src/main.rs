//! The `reprise` binary: parse flags, run one command, map the outcome to
//! an exit code. Everything else lives in the library crates.

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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::from(exit::OK);
        }
        Err(e) => {
            // One line, like every other error; --help has the details.
            let rendered = e.render().to_string();
            let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("reprise: {first} (see `reprise --help`)");
            return ExitCode::from(exit::USAGE);
        }
    };
    init_logging(cli.global.verbose, cli.global.quiet);
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        let mut hits = 0;
        let _ = ctrlc::set_handler(move || {
            hits += 1;
            if hits > 1 {
                eprintln!("reprise: interrupted again, stopping the servers it started and exiting now");
                reprise_postgres::cluster::stop_all();
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
            eprintln!("reprise: interrupting: finishing what is in flight (Ctrl-C again to stop at once)");
            cancel.cancel();
        });
    }
    let json = cli.global.json;
    match run(cli, cancel) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            let code = exit::code_of(&e);
            // One line: the outermost message already carries the cause and
            // the fix; anyhow's chain is for -v.
            eprintln!("reprise: {e}");
            tracing::debug!("{e:?}");
            // One JSON document on stdout: the error object, unless the
            // command already printed its report (the exit code says it failed).
            if json && !context::printed_json() {
                println!("{}", serde_json::json!({ "error": { "message": e.to_string(), "exit_code": code } }));
            }
            ExitCode::from(code)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPRISE_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).without_time().init();
}

fn run(cli: Cli, cancel: CancelToken) -> anyhow::Result<()> {
    // Commands that need no plan or repository first.
    match &cli.command {
        Command::Plan(cmd) => return commands::plan::run(&cli.global, cli.global.json, cmd),
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
        Command::Ledger(c) => commands::ledger::run(&ctx, c),
        Command::Plan(_) | Command::Demo(_) | Command::WalFetch(_) => unreachable!("handled above"),
    }
}
