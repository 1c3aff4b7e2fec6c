//! The files part of the demo: a signed-documents store backed up twice,
//! restored, verified byte for byte, checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use reprise_engine::backup::{BackupOptions, backup};
use reprise_engine::cache::FilesCache;
use reprise_engine::check::{CheckOptions, ReadData, check};
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::KdfParams;
use reprise_engine::restore::{RestoreOptions, restore};
use reprise_engine::{CancelToken, NoProgress, Repository};
use reprise_source_files::{FilesOptions, FilesSource};

use crate::datasets;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Engine(#[from] reprise_engine::Error),
    #[error("{0}")]
    Source(#[from] reprise_source_files::SourceError),
    #[error("demo data: {0}")]
    Io(#[from] std::io::Error),
    #[error("verification failed: {0}")]
    Verification(String),
}

/// One measured step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoStep {
    pub name: String,
    pub detail: String,
    pub millis: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DemoReport {
    pub workdir: PathBuf,
    pub steps: Vec<DemoStep>,
    pub source_bytes: u64,
    pub stored_bytes: u64,
    pub restore_millis: u64,
    pub files_verified: u64,
}

fn step(report: &mut DemoReport, on_step: &mut dyn FnMut(&DemoStep), name: &str, started: Instant, detail: String) -> u64 {
    let s = DemoStep { name: name.to_owned(), detail, millis: started.elapsed().as_millis() as u64 };
    on_step(&s);
    let ms = s.millis;
    report.steps.push(s);
    ms
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// Runs the files demo in `workdir` (which must be empty or missing).
pub fn run_files_demo(workdir: &Path, documents: usize, cancel: &CancelToken, on_step: &mut dyn FnMut(&DemoStep)) -> Result<DemoReport, DemoError> {
    let mut report = DemoReport { workdir: workdir.to_owned(), ..DemoReport::default() };
    let source = workdir.join("medicapp/legal_documents_signed");
    let repo_dir = workdir.join("repository");
    let restored = workdir.join("restored");
    std::fs::create_dir_all(&source)?;

    let t = Instant::now();
    let bytes = datasets::signed_documents(&source, documents, 1)?;
    step(&mut report, on_step, "generate", t, format!("{documents} signed documents, {} (3 shared templates, unique text and signatures)", mib(bytes)));

    let t = Instant::now();
    // A throwaway passphrase, kept beside the demo for inspection (mode 0600).
    let pass_hex = blake3::hash(format!("{}{:?}", workdir.display(), std::time::SystemTime::now()).as_bytes()).to_hex()[..32].to_owned();
    let pass_file = workdir.join("passphrase");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&pass_file)?;
        writeln!(f, "{pass_hex}")?;
    }
    let backend = reprise_engine::backends::open(&repo_dir.display().to_string()).map_err(reprise_engine::Error::from)?;
    let repo = Arc::new(Repository::init(backend, pass_hex.as_bytes(), KdfParams::default(), ChunkerParams::default())?);
    step(&mut report, on_step, "init", t, format!("encrypted repository {} at {}", repo.id().short(), repo_dir.display()));

    let cache_dir = workdir.join("cache");
    let backup_once = |label: &str, report: &mut DemoReport, on_step: &mut dyn FnMut(&DemoStep)| -> Result<(), DemoError> {
        let t = Instant::now();
        let src = FilesSource::new(std::slice::from_ref(&source), &FilesOptions::default())?;
        let mut opts = BackupOptions::new("signed-documents", "files");
        opts.paths = vec![source.display().to_string().into_bytes()];
        opts.files_cache = Some(FilesCache::path_for(&cache_dir, repo.id(), &opts.host, "signed-documents"));
        opts.cancel = cancel.clone();
        let out = backup(&repo, src, &opts, &(Arc::new(NoProgress) as Arc<dyn reprise_engine::Progress>))?;
        let s = &out.header.summary;
        report.stored_bytes += s.stored_bytes;
        step(
            report,
            on_step,
            label,
            t,
            format!(
                "snapshot {}: {} files, {}; read {} files, stored {} (dedup + zstd + AES-256-GCM)",
                out.id.short(),
                s.files,
                mib(s.bytes),
                s.files_read,
                mib(s.stored_bytes)
            ),
        );
        report.source_bytes = s.bytes;
        Ok(())
    };
    backup_once("backup 1", &mut report, on_step)?;

    // A day of activity: new consents, an amended report, a withdrawn form.
    let t = Instant::now();
    let extra = workdir.join("extra");
    datasets::signed_documents(&extra, 30, 2)?;
    let mut moved = 0;
    for kind in ["consentement", "ordonnance", "compte-rendu"] {
        let from = extra.join(kind);
        for d in std::fs::read_dir(&from)? {
            let d = d?;
            let target = source.join(kind).join(format!("new-{}", d.file_name().to_string_lossy()));
            std::fs::rename(d.path(), target)?;
            moved += 1;
        }
    }
    std::fs::remove_dir_all(&extra)?;
    step(&mut report, on_step, "activity", t, format!("{moved} new folders of documents added"));
    backup_once("backup 2", &mut report, on_step)?;

    let t = Instant::now();
    let latest = repo.find_snapshot("latest", &|_| true)?;
    let mut ropts = RestoreOptions::new(&restored);
    ropts.subpath = source.strip_prefix("/").unwrap_or(&source).display().to_string().into_bytes();
    ropts.cancel = cancel.clone();
    let out = restore(&repo, &latest.id, &ropts, &NoProgress)?;
    if !out.damaged.is_empty() {
        return Err(DemoError::Verification(format!("{} damaged entries", out.damaged.len())));
    }
    report.restore_millis = step(&mut report, on_step, "restore", t, format!("{} files, {} restored to {}", out.files, mib(out.bytes), restored.display()));

    let t = Instant::now();
    let files = datasets::compare_trees(&source, &restored).map_err(DemoError::Verification)?;
    report.files_verified = files;
    step(&mut report, on_step, "verify", t, format!("{files} restored files identical to the source, byte for byte"));

    let t = Instant::now();
    let chk = check(&repo, &CheckOptions { read_data: ReadData::All, cancel: cancel.clone() }, &NoProgress)?;
    if !chk.ok() {
        return Err(DemoError::Verification(format!("check found {} problems", chk.problems.len())));
    }
    step(&mut report, on_step, "check", t, format!("{} packs read, every blob decrypted and verified", chk.packs_read));
    Ok(report)
}
