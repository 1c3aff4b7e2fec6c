//! Deterministic synthetic datasets for the demo, tests and benchmarks.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::Path;

/// SplitMix64: a tiny deterministic generator; datasets must be identical
/// from run to run so that benchmark figures compare.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// `n` incompressible bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        let mut out = vec![0u8; n];
        blake3::Hasher::new_keyed(&key).finalize_xof().fill(&mut out);
        out
    }
}

const WORDS: &[&str] = &[
    "patient", "intervention", "chirurgie", "pediatrique", "consentement", "eclaire", "anesthesie", "risque", "parent", "tuteur",
    "signature", "date", "hopital", "service", "ordonnance", "posologie", "matin", "soir", "pendant", "jours", "compte", "rendu",
    "operatoire", "suites", "simples", "controle", "semaines",
];

/// A store of signed documents shaped like `shared/bench/gen_docs.py`:
/// three templates (incompressible, shared by every document of a kind),
/// a per-patient text part (compressible), and a unique signature image.
/// Files are `KIND/NNN/case-N-signed.pdf`. Returns total bytes written.
pub fn signed_documents(out: &Path, n: usize, seed: u64) -> std::io::Result<u64> {
    let mut maker = SignedDocuments::new(seed);
    let mut total = 0u64;
    for i in 0..n {
        let case = 100_000 + i;
        let dir = out.join(SignedDocuments::KINDS[i % 3]).join(format!("{:03}", case / 1000));
        fs::create_dir_all(&dir)?;
        let body = maker.document(i % 3);
        let mut f = fs::File::create(dir.join(format!("case-{case}-signed.pdf")))?;
        f.write_all(&body)?;
        total += body.len() as u64;
    }
    Ok(total)
}

/// The bodies of `signed_documents`, one at a time, for a caller that
/// names the files itself (the demo writes the documents its database
/// points to).
pub struct SignedDocuments {
    rng: Rng,
    templates: [Vec<u8>; 3],
}

impl SignedDocuments {
    pub const KINDS: [&'static str; 3] = ["consentement", "ordonnance", "compte-rendu"];

    #[must_use]
    pub fn new(seed: u64) -> SignedDocuments {
        let mut rng = Rng::new(seed);
        let templates = [rng.bytes(180_000), rng.bytes(120_000), rng.bytes(260_000)];
        SignedDocuments { rng, templates }
    }

    /// One signed PDF of kind `k` (an index into `KINDS`, taken modulo 3).
    pub fn document(&mut self, k: usize) -> Vec<u8> {
        let k = k % 3;
        let rng = &mut self.rng;
        let words = rng.range(800, 2500);
        let mut text = String::with_capacity(words as usize * 10);
        for w in 0..words {
            if w > 0 {
                text.push(' ');
            }
            text.push_str(WORDS[rng.range(0, WORDS.len() as u64 - 1) as usize]);
        }
        let sig = rng.range(20_000, 60_000) as usize;
        let mut body = Vec::with_capacity(self.templates[k].len() + text.len() + sig + 64);
        body.extend_from_slice(b"%PDF-1.7\n");
        body.extend_from_slice(&self.templates[k]);
        body.extend_from_slice(format!("\nBT /F1 11 Tf ({text}) Tj ET\n").as_bytes());
        body.extend_from_slice(&rng.bytes(sig));
        body.extend_from_slice(b"\n%%EOF\n");
        body
    }
}

/// A source-code-like tree: many small, compressible text files in nested
/// modules, with a few duplicates (vendored copies). Returns bytes written.
pub fn source_tree(out: &Path, files: usize, seed: u64) -> std::io::Result<u64> {
    let mut rng = Rng::new(seed);
    let idents = ["patient", "procedure", "consent", "schedule", "audit", "render", "parse", "store", "fetch", "validate", "config", "session"];
    let mut total = 0u64;
    let mut vendored: Vec<Vec<u8>> = Vec::new();
    for i in 0..files {
        let depth = rng.range(1, 4);
        let mut dir = out.to_path_buf();
        for _ in 0..depth {
            dir.push(format!("mod_{}", rng.range(0, 7)));
        }
        fs::create_dir_all(&dir)?;
        let body = if i % 25 == 0 && !vendored.is_empty() {
            vendored[rng.range(0, vendored.len() as u64 - 1) as usize].clone()
        } else {
            let lines = rng.range(20, 600);
            let mut s = String::new();
            for l in 0..lines {
                let a = idents[rng.range(0, idents.len() as u64 - 1) as usize];
                let b = idents[rng.range(0, idents.len() as u64 - 1) as usize];
                let _ = writeln!(s, "    let {a}_{l} = {b}::new({}); // {a} {b}", rng.range(0, 100_000));
            }
            let v = format!("// generated file {i}\nfn f{i}() {{\n{s}}}\n").into_bytes();
            if i % 10 == 0 {
                vendored.push(v.clone());
            }
            v
        };
        fs::write(dir.join(format!("file_{i}.rs")), &body)?;
        total += body.len() as u64;
    }
    Ok(total)
}

/// Compares two trees byte for byte (contents, and the set of entries).
/// Returns the first difference found.
pub fn compare_trees(a: &Path, b: &Path) -> Result<u64, String> {
    let mut files = 0;
    let mut ea: Vec<_> = fs::read_dir(a).map_err(|e| format!("{}: {e}", a.display()))?.filter_map(Result::ok).map(|e| e.file_name()).collect();
    let mut eb: Vec<_> = fs::read_dir(b).map_err(|e| format!("{}: {e}", b.display()))?.filter_map(Result::ok).map(|e| e.file_name()).collect();
    ea.sort();
    eb.sort();
    if ea != eb {
        return Err(format!("{} and {} list different entries", a.display(), b.display()));
    }
    for name in ea {
        let (pa, pb) = (a.join(&name), b.join(&name));
        let (ma, mb) = (fs::symlink_metadata(&pa).map_err(|e| e.to_string())?, fs::symlink_metadata(&pb).map_err(|e| e.to_string())?);
        if ma.file_type() != mb.file_type() {
            return Err(format!("{} differs in type", pb.display()));
        }
        if ma.is_dir() {
            files += compare_trees(&pa, &pb)?;
        } else if ma.is_file() {
            if fs::read(&pa).map_err(|e| e.to_string())? != fs::read(&pb).map_err(|e| e.to_string())? {
                return Err(format!("{} differs from {}", pb.display(), pa.display()));
            }
            files += 1;
        } else if ma.file_type().is_symlink() && fs::read_link(&pa).ok() != fs::read_link(&pb).ok() {
            return Err(format!("symlink {} differs", pb.display()));
        }
    }
    Ok(files)
}
