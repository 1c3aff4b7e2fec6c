//! Writes one of the project's deterministic benchmark datasets.
//!
//! ```text
//! gen-dataset docs   OUT N     SEED   # signed documents (shape of shared/bench/gen_docs.py)
//! gen-dataset source OUT FILES SEED   # source-code-like tree
//! gen-dataset medicapp-schema         # the demo's MedicApp schema (SQL, on stdout)
//! ```
//!
//! The generators themselves live in `reprise_demo::datasets`, so that the
//! demo, the tests and the benchmarks all measure the same bytes.

use std::path::PathBuf;
use std::process::ExitCode;

use reprise_demo::datasets;

const USAGE: &str = "usage: gen-dataset docs OUT N SEED | gen-dataset source OUT FILES SEED | gen-dataset medicapp-schema";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["medicapp-schema"] {
        print!("{}", reprise_demo::medicapp::SCHEMA);
        return ExitCode::SUCCESS;
    }
    let [kind, out, count, seed] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let (Ok(count), Ok(seed)) = (count.parse::<usize>(), seed.parse::<u64>()) else {
        eprintln!("gen-dataset: N/FILES and SEED must be non-negative integers\n{USAGE}");
        return ExitCode::from(2);
    };
    let out = PathBuf::from(out);
    let result = match kind.as_str() {
        "docs" => datasets::signed_documents(&out, count, seed),
        "source" => datasets::source_tree(&out, count, seed),
        other => {
            eprintln!("gen-dataset: unknown dataset kind {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(bytes) => {
            println!("{kind}: {count} files, {bytes} bytes in {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-dataset: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
