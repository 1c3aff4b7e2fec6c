//! Shared fixtures for the reprise-format fuzz targets.
//!
//! Everything here is deterministic *within a process*: fixed secrets (parsed
//! from a fixed recovery key file), a fixed pack key, and helpers that seal a
//! fuzz input exactly as the format does (`docs/FORMAT.md`), with a fixed
//! nonce, so the inner parsers behind the authentication checks are reached.
//!
//! A few format constants are private in `reprise-format` (the AADs of pack
//! directories, snapshot headers and key files; the blob nonce and AAD). They
//! are copied here from `docs/FORMAT.md` and checked once per process against
//! objects produced by the crate's own encoders ([`ctx`] panics at start-up if
//! the format changed), so a stale copy cannot silently make a target test
//! nothing but the authentication failure path.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reprise_format::crypto::{IdKey, NONCE_LEN, RecoverySecretKey, SymmetricKey};
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::keys::{DomainId, DomainKeys, KdfParams, KeyFile, KeyLabels, Secrets};
use reprise_format::pack::{self, PackEntry, PackWriter};
use reprise_format::sign::{SIGNATURE_BLOCK_LEN, SigningKey};
use reprise_format::snapshot::{self, SnapshotBody, SnapshotHeader, Summary};
use reprise_format::tree::{Node, NodeKind, Tree};
use reprise_format::wal::{self, WalHeader};
use reprise_format::{BlobKind, Id};

/// `docs/FORMAT.md` §6.2.
pub const DIRECTORY_AAD: &[u8] = b"reprise pack directory v2";
/// `docs/FORMAT.md` §9.
pub const HEADER_AAD: &[u8] = b"reprise snapshot header v2";
/// `docs/FORMAT.md` §4.
pub const KEY_FILE_AAD: &[u8] = b"reprise key v1";
/// `crates/format/src/wal.rs`: AAD of a WAL file's header (catalog key).
pub const WAL_HEADER_AAD: &[u8] = b"reprise wal header v2";
/// The domain every object here is written in (the administrator's).
pub const DOMAIN: DomainId = DomainId::ADMIN;
/// A signature block: decoders strip it without checking it (signatures are
/// the engine's to judge), so any 96 bytes reach the parsers behind it.
pub const NO_SIGNATURE: [u8; SIGNATURE_BLOCK_LEN] = [0xEE; SIGNATURE_BLOCK_LEN];
/// `crates/format/src/wal.rs`: a WAL body's AAD is this followed by the file name.
pub const WAL_BODY_AAD: &[u8] = b"reprise wal v1";
/// The passphrase of every key file the targets build.
pub const PASSPHRASE: &[u8] = b"fuzz passphrase";
/// The nonce every deterministic seal here uses.
pub const FIXED_NONCE: [u8; NONCE_LEN] = [7; NONCE_LEN];

/// `docs/FORMAT.md` §6.1: `00 00 00 00 || u64 LE offset`.
#[must_use]
pub fn blob_nonce(offset: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&u64::from(offset).to_le_bytes());
    n
}

/// `docs/FORMAT.md` §6.1: `kind byte || blob id`.
#[must_use]
pub fn blob_aad(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind.code();
    aad[1..].copy_from_slice(&id.0);
    aad
}

/// Everything a target needs, built once per process.
pub struct Ctx {
    pub secrets: Secrets,
    /// The administrator domain's keys and the administrator's signing key.
    pub keys: DomainKeys,
    pub signer: SigningKey,
    /// A fixed pack data key for blob targets.
    pub pack_key: SymmetricKey,
    /// A valid sealed snapshot header / body (catalog key / recovery key).
    pub sealed_header: Vec<u8>,
    pub sealed_body: Vec<u8>,
    pub header: SnapshotHeader,
    pub body: SnapshotBody,
    /// A key file sealed with `KdfParams::insecure_fast()` under [`PASSPHRASE`],
    /// as JSON, and the key-encryption key derived from it.
    pub key_file_template: serde_json::Value,
    pub key_file_kek: SymmetricKey,
    pub key_file_nonce: [u8; NONCE_LEN],
    /// A fixed WAL file key and its HPKE seal to the recovery public key.
    pub wal_file_key: SymmetricKey,
    pub wal_sealed_key: Vec<u8>,
}

impl Ctx {
    #[must_use]
    pub fn catalog_key(&self) -> &SymmetricKey {
        &self.keys.catalog_key
    }

    #[must_use]
    pub fn id_key(&self) -> &IdKey {
        &self.keys.id_key
    }

    #[must_use]
    pub fn recovery(&self) -> &RecoverySecretKey {
        self.secrets.recovery().expect("fixed secrets have full access")
    }

    #[must_use]
    pub fn repository(&self) -> Id {
        self.secrets.repository_id
    }
}

/// The fixed recovery key file all targets use.
#[must_use]
pub fn fixed_recovery_file() -> Vec<u8> {
    let sk = RecoverySecretKey::from_bytes([0x11; 32]).expect("valid X25519 secret");
    let pk = sk.public_key();
    serde_json::to_vec_pretty(&serde_json::json!({
        "format": "reprise-recovery-key",
        "version": 1,
        "repository_id": hex::encode([0x01; 32]),
        "id_key": hex::encode([0x22; 32]),
        "catalog_key": hex::encode([0x33; 32]),
        "chunker_seed": "0123456789abcdef",
        "recovery_public": hex::encode(pk.as_bytes()),
        "recovery_secret": hex::encode(sk.as_bytes()),
    }))
    .expect("json")
}

#[must_use]
pub fn fixed_header() -> SnapshotHeader {
    SnapshotHeader {
        version: 1,
        time: jiff::Timestamp::from_second(1_700_000_000).expect("valid time"),
        host: "db1".into(),
        component: "postgres".into(),
        kind: "files".into(),
        tags: vec!["daily".into()],
        summary: Summary { files: 3, dirs: 1, bytes: 42, ..Summary::default() },
        parent: Some(Id([9; 32])),
        labels: [("wal".to_string(), "0/16B3748".to_string())].into_iter().collect(),
    }
}

#[must_use]
pub fn fixed_body() -> SnapshotBody {
    SnapshotBody {
        tree: Id([2; 32]),
        paths: vec![serde_bytes::ByteBuf::from(b"/var/lib/data".to_vec())],
        excludes: vec!["*.tmp".into()],
        user: "root".into(),
        errors: vec![],
        labels: Default::default(),
    }
}

/// A WAL header describing `plaintext`.
#[must_use]
pub fn wal_header_for(id_key: &IdKey, name: &str, plaintext: &[u8]) -> WalHeader {
    WalHeader {
        version: 1,
        name: name.into(),
        size: plaintext.len() as u64,
        hash: id_key.blob_id(plaintext),
        modified: jiff::Timestamp::from_second(1_700_000_000).expect("valid time"),
        pushed: jiff::Timestamp::from_second(1_700_000_100).expect("valid time"),
        host: "db1".into(),
        system_identifier: 7_300_000_000_000_000_000,
    }
}

/// `WAL_BODY_AAD || name`.
#[must_use]
pub fn wal_body_aad(name: &[u8]) -> Vec<u8> {
    let mut aad = WAL_BODY_AAD.to_vec();
    aad.extend_from_slice(name);
    aad
}

/// A stored WAL file: `"RPRSWAL2" || domain || u32 H || sealed header || sealed key || sealed body || signature block`.
#[must_use]
pub fn wal_object(sealed_header: &[u8], sealed_key: &[u8], sealed_body: &[u8]) -> Vec<u8> {
    let mut out = wal::WAL_MAGIC.to_vec();
    out.extend_from_slice(&DOMAIN.0);
    out.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    out.extend_from_slice(sealed_header);
    out.extend_from_slice(sealed_key);
    out.extend_from_slice(sealed_body);
    out.extend_from_slice(&NO_SIGNATURE);
    out
}

/// Splits a stored WAL file into sealed header, sealed file key and sealed body.
#[must_use]
pub fn wal_parts(object: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let h = u32::from_le_bytes(object[40..44].try_into().expect("4 bytes")) as usize;
    let rest = &object[44 + h..object.len() - SIGNATURE_BLOCK_LEN];
    (&object[44..44 + h], &rest[..pack::SEALED_KEY_LEN], &rest[pack::SEALED_KEY_LEN..])
}

/// A small, valid tree with one node of each interesting kind.
#[must_use]
pub fn sample_tree() -> Tree {
    let mut file = Node::new(b"a.txt".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.size = 5;
    file.content = vec![Id([4; 32]), Id([5; 32])];
    file.user = "alice".into();
    let mut dir = Node::new(b"dir".to_vec(), NodeKind::Dir);
    dir.subtree = Some(Id([6; 32]));
    let mut link = Node::new(b"link".to_vec(), NodeKind::Symlink);
    link.target = Some(b"../elsewhere".to_vec());
    let mut dev = Node::new(b"null".to_vec(), NodeKind::Char);
    dev.rdev = 0x103;
    let mut t = Tree { nodes: vec![file, dir, link, dev] };
    t.sort();
    t
}

/// A real pack built by the crate's own writer with the fixed secrets, and the
/// raw contents of its blobs.
#[must_use]
pub fn sample_pack(secrets: &Secrets) -> (Vec<u8>, Vec<PackEntry>, Vec<Vec<u8>>) {
    let raws: Vec<(BlobKind, Vec<u8>)> = vec![
        (BlobKind::Data, b"consent form of patient 42".to_vec()),
        (BlobKind::Data, b"abcdefgh".repeat(100)),
        (BlobKind::Tree, sample_tree().encode()),
    ];
    let keys = secrets.domain_keys(&DOMAIN).expect("full");
    let mut w = PackWriter::new(&secrets.recovery_public, 4096);
    for (kind, raw) in &raws {
        let (c, payload) = pack::compress(raw, 3);
        w.add(*kind, keys.id_key.blob_id(raw), raw.len() as u32, c, &payload);
    }
    let (_, bytes, entries) = w.finish(&DOMAIN, &keys.catalog_key, &secrets.admin_key().expect("full"), &secrets.repository_id);
    (bytes, entries, raws.into_iter().map(|(_, r)| r).collect())
}

/// Seals `plain` under `key` with AAD `aad` and [`FIXED_NONCE`]:
/// `nonce || ciphertext || tag`, the layout of every catalog-key object.
#[must_use]
pub fn seal_fixed(key: &SymmetricKey, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut body = plain.to_vec();
    key.seal_in_place(FIXED_NONCE, aad, &mut body);
    let mut out = FIXED_NONCE.to_vec();
    out.extend_from_slice(&body);
    out
}

/// The 45-byte encoding of directory entries, produced by the crate's own
/// encoder (through `IndexFile::encode_plain`, whose tail is exactly the
/// entries of its last pack).
#[must_use]
pub fn encode_entries(entries: &[PackEntry]) -> Vec<u8> {
    let idx = IndexFile { supersedes: vec![], packs: vec![IndexedPack { id: Id::default(), length: u64::MAX, blobs: entries.to_vec() }] };
    let plain = idx.encode_plain();
    plain[plain.len() - entries.len() * pack::DIRECTORY_ENTRY_LEN..].to_vec()
}

/// A directory plaintext: `u32 count || entries`.
#[must_use]
pub fn directory_plain(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = (entries.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&encode_entries(entries));
    out
}

/// A whole pack around a sealed directory: magic, an 80-byte (garbage) sealed
/// pack key, `blob_area` bytes of blobs, the directory and the trailer
/// (`D || domain || magic || signature block`).
#[must_use]
pub fn pack_around(sealed_directory: &[u8], blob_area: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(pack::HEADER_LEN + blob_area + sealed_directory.len() + pack::TRAILER_LEN);
    p.extend_from_slice(pack::PACK_MAGIC);
    p.resize(pack::HEADER_LEN + blob_area, 0xAB);
    p.extend_from_slice(sealed_directory);
    p.extend_from_slice(&(sealed_directory.len() as u32).to_le_bytes());
    p.extend_from_slice(&DOMAIN.0);
    p.extend_from_slice(pack::PACK_MAGIC);
    p.extend_from_slice(&NO_SIGNATURE);
    p
}

/// The tail a version 2 pack with a directory of `directory_len` bytes has.
#[must_use]
pub fn pack_tail(directory_len: usize) -> pack::PackTail {
    pack::PackTail { directory_len, trailer_len: pack::TRAILER_LEN, domain: Some(DOMAIN), signer: None }
}

/// `"RPRSSNP2" || domain || u32 H || header || body || signature block`.
#[must_use]
pub fn snapshot_object(sealed_header: &[u8], sealed_body: &[u8]) -> Vec<u8> {
    let mut out = snapshot::SNAPSHOT_MAGIC.to_vec();
    out.extend_from_slice(&DOMAIN.0);
    out.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    out.extend_from_slice(sealed_header);
    out.extend_from_slice(sealed_body);
    out.extend_from_slice(&NO_SIGNATURE);
    out
}

/// Splits a stored snapshot into its sealed header and sealed body.
#[must_use]
pub fn snapshot_parts(object: &[u8]) -> (&[u8], &[u8]) {
    let h = u32::from_le_bytes(object[40..44].try_into().expect("4 bytes")) as usize;
    (&object[44..44 + h], &object[44 + h..object.len() - SIGNATURE_BLOCK_LEN])
}

/// A signed object's bytes with any (unchecked) signature block appended.
#[must_use]
pub fn unsigned(magic: &[u8], sealed: &[u8]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(sealed);
    out.extend_from_slice(&NO_SIGNATURE);
    out
}

/// Labels for key files the targets seal.
#[must_use]
pub fn labels() -> KeyLabels {
    KeyLabels { host: "fuzz-host".into(), user: "fuzz-user".into(), label: "fuzz".into(), bound_host: None }
}

/// A key file (JSON bytes) whose sealed secrets are `plain`, sealed under the
/// template's key-encryption key: reaches the secrets parser behind `open`.
#[must_use]
pub fn key_file_with_plaintext(ctx: &Ctx, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    ctx.key_file_kek.seal_in_place(ctx.key_file_nonce, KEY_FILE_AAD, &mut buf);
    let mut v = ctx.key_file_template.clone();
    v["sealed"] = serde_json::Value::String(B64.encode(buf));
    serde_json::to_vec_pretty(&v).expect("json")
}

/// The plaintext (secrets JSON) inside a key file sealed by [`Ctx`]'s template KEK.
#[must_use]
pub fn key_file_plaintext(ctx: &Ctx, key_file: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(key_file).expect("key file JSON");
    let nonce: [u8; NONCE_LEN] = B64.decode(v["nonce"].as_str().expect("nonce")).expect("b64").try_into().expect("12 bytes");
    assert_eq!(nonce, ctx.key_file_nonce, "key file not sealed by this process's template");
    let mut buf = B64.decode(v["sealed"].as_str().expect("sealed")).expect("b64");
    ctx.key_file_kek.open_in_place(nonce, KEY_FILE_AAD, &mut buf, "key file").expect("template KEK opens the key file");
    buf
}

/// A key file sealed with the template's salt and nonce (so [`key_file_plaintext`]
/// can open it) for `secrets`.
#[must_use]
pub fn key_file_for(ctx: &Ctx, secrets: &Secrets) -> Vec<u8> {
    let s = secrets.to_recovery_file().ok();
    // The inner plaintext is the recovery file's JSON without format/version.
    let plain = match s {
        Some(rf) => {
            let mut v: serde_json::Value = serde_json::from_slice(&rf).expect("json");
            let m = v.as_object_mut().expect("object");
            m.remove("format");
            m.remove("version");
            serde_json::to_vec(&v).expect("json")
        }
        None => {
            // A version 2 writer: its credential's JSON without `format`.
            let wc = secrets.to_write_credential().expect("a version 2 writer");
            let mut v: serde_json::Value = serde_json::from_slice(&wc).expect("json");
            v.as_object_mut().expect("object").remove("format");
            serde_json::to_vec(&v).expect("json")
        }
    };
    key_file_with_plaintext(ctx, &plain)
}

/// Asserts two secret sets are the same, field by field.
pub fn assert_same_secrets(a: &Secrets, b: &Secrets) {
    assert_eq!(a.repository_id, b.repository_id);
    assert_eq!(a.recovery_public, b.recovery_public);
    assert_eq!(a.recovery(), b.recovery());
    assert_eq!(a.role(), b.role());
    assert_eq!(a.admin_id(), b.admin_id());
    assert_eq!(a.shared_key(), b.shared_key());
    assert_eq!(a.signer().map(|(k, d)| (k.key_id(), d)), b.signer().map(|(k, d)| (k.key_id(), d)));
    let home = a.home_domain();
    assert_eq!(home, b.home_domain());
    let (ka, kb) = (a.domain_keys(&home).expect("own domain"), b.domain_keys(&home).expect("own domain"));
    assert_eq!((ka.id_key, ka.catalog_key, ka.chunker_seed), (kb.id_key, kb.catalog_key, kb.chunker_seed));
}

fn argon2_kek(passphrase: &[u8], salt: &[u8], p: KdfParams) -> [u8; 32] {
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32)).expect("params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon.hash_password_into(passphrase, salt, &mut out).expect("argon2");
    out
}

fn build_ctx() -> Ctx {
    let secrets = Secrets::from_recovery_file(&fixed_recovery_file()).expect("fixed recovery file is valid");
    let recovery = secrets.recovery().expect("full").clone();
    let keys = secrets.domain_keys(&DOMAIN).expect("full");
    let signer = secrets.admin_key().expect("full");
    let repo = secrets.repository_id;

    // Pack: directory AAD, blob nonce and blob AAD.
    let (bytes, entries, raws) = sample_pack(&secrets);
    let dlen = pack::tail_of(&bytes).expect("trailer").directory_len;
    let sealed_dir = &bytes[bytes.len() - pack::TRAILER_LEN - dlen..bytes.len() - pack::TRAILER_LEN];
    let dir_plain = keys.catalog_key.open_with_nonce_prefix(DIRECTORY_AAD, sealed_dir, "pack directory").expect("DIRECTORY_AAD matches the format");
    assert_eq!(dir_plain, directory_plain(&entries), "directory encoding matches the format");
    let key = pack::open_pack_key(&bytes, &recovery).expect("pack key");
    for (e, raw) in entries.iter().zip(&raws) {
        let mut ct = bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
        key.open_in_place(blob_nonce(e.offset), &blob_aad(e.kind, &e.id), &mut ct, "blob").expect("blob nonce/AAD match the format");
        assert_eq!(pack::open_blob(&key, &keys.id_key, e, &bytes[e.offset as usize..(e.offset + e.length) as usize]).expect("blob"), *raw);
    }

    // Snapshot: header AAD.
    let header = fixed_header();
    let body = fixed_body();
    let object = snapshot::seal(&header, &body, &DOMAIN, &keys.catalog_key, &secrets.recovery_public, &signer, &repo);
    let (sealed_header, sealed_body) = snapshot_parts(&object);
    keys.catalog_key.open_with_nonce_prefix(HEADER_AAD, sealed_header, "snapshot header").expect("HEADER_AAD matches the format");
    assert_eq!(snapshot::open_header(&object, &keys.catalog_key).expect("header"), header);
    assert_eq!(snapshot::open_header(&snapshot_object(sealed_header, sealed_body), &keys.catalog_key).expect("hand-built header"), header);
    assert_eq!(snapshot::open_body(&object, &recovery).expect("body"), body);

    // Key file: Argon2id KEK and AAD.
    let kf = KeyFile::seal(&secrets, PASSPHRASE, KdfParams::insecure_fast(), &labels()).expect("seal");
    let template: serde_json::Value = serde_json::from_slice(&kf.to_bytes()).expect("key file JSON");
    let salt = B64.decode(template["kdf"]["salt"].as_str().expect("salt")).expect("b64");
    let nonce: [u8; NONCE_LEN] = B64.decode(template["nonce"].as_str().expect("nonce")).expect("b64").try_into().expect("12 bytes");
    let kek = SymmetricKey::from_bytes(argon2_kek(PASSPHRASE, &salt, KdfParams::insecure_fast()));
    let mut buf = B64.decode(template["sealed"].as_str().expect("sealed")).expect("b64");
    kek.open_in_place(nonce, KEY_FILE_AAD, &mut buf, "key file").expect("KEK derivation and KEY_FILE_AAD match the format");

    // WAL: header AAD, key info, body nonce and AAD.
    let wal_plain = b"WAL page ".repeat(50);
    let wal_header = wal_header_for(&keys.id_key, "000000010000000000000003", &wal_plain);
    let object = wal::seal(&wal_header, &wal_plain, 1, &DOMAIN, &keys.catalog_key, &secrets.recovery_public, &signer, &repo);
    let (sealed_h, sealed_k, sealed_b) = wal_parts(&object);
    keys.catalog_key.open_with_nonce_prefix(WAL_HEADER_AAD, sealed_h, "WAL header").expect("WAL_HEADER_AAD matches the format");
    let file_key: [u8; 32] = recovery.open(wal::WAL_KEY_INFO, sealed_k, "WAL key").expect("WAL key").try_into().expect("32 bytes");
    let mut wal_body = sealed_b.to_vec();
    SymmetricKey::from_bytes(file_key)
        .open_in_place([0; NONCE_LEN], &wal_body_aad(wal_header.name.as_bytes()), &mut wal_body, "WAL body")
        .expect("WAL body nonce and AAD match the format");
    assert_eq!(wal::open(&object, &keys.catalog_key, &keys.id_key, &recovery).expect("WAL opens"), (wal_header.clone(), wal_plain.clone()));
    assert_eq!(wal::open(&wal_object(sealed_h, sealed_k, sealed_b), &keys.catalog_key, &keys.id_key, &recovery).expect("hand-built WAL opens"), (wal_header, wal_plain));
    let wal_file_key = SymmetricKey::from_bytes([0x55; 32]);
    let wal_sealed_key = secrets.recovery_public.seal(wal::WAL_KEY_INFO, wal_file_key.as_bytes());

    let ctx = Ctx {
        keys,
        signer,
        wal_file_key,
        wal_sealed_key,
        pack_key: SymmetricKey::from_bytes([0x42; 32]),
        sealed_header: sealed_header.to_vec(),
        sealed_body: sealed_body.to_vec(),
        header,
        body,
        key_file_template: template,
        key_file_kek: kek,
        key_file_nonce: nonce,
        secrets,
    };
    // The hand-built key file path agrees with the crate's.
    let rebuilt = key_file_for(&ctx, &ctx.secrets);
    let opened = KeyFile::from_bytes(&rebuilt).expect("key file").open(PASSPHRASE).expect("opens");
    assert_same_secrets(&opened, &ctx.secrets);
    ctx
}

/// The per-process fixtures; the first call checks the copied format constants.
pub fn ctx() -> &'static Ctx {
    static CTX: OnceLock<Ctx> = OnceLock::new();
    CTX.get_or_init(build_ctx)
}

/// Reads little-endian fields off the front of a fuzz input; missing bytes read
/// as zero, so every input is accepted.
#[derive(Debug)]
pub struct Cursor<'a>(pub &'a [u8]);

impl<'a> Cursor<'a> {
    pub fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    #[must_use]
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}
