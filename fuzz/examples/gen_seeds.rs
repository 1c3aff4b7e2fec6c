//! Writes the seed corpus: one or a few valid inputs per fuzz target, in each
//! target's input layout, made with the crate's own encoders and the fixed
//! fuzzing keys of `reprise_fuzz`.
//!
//!     cargo run --example gen_seeds [OUT_DIR]    # default: fuzz/seeds
//!
//! Sealed seeds use random nonces (and, for packs, random pack keys), so their
//! bytes change from run to run; they stay valid for the fixed keys.

use std::path::{Path, PathBuf};

use reprise_format::Id;
use reprise_format::chunker::ChunkerParams;
use reprise_format::config::RepositoryConfig;
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::keys::{KdfParams, KeyFile};
use reprise_format::pack;
use reprise_format::snapshot::{self, SnapshotBody, SnapshotHeader, Summary};
use reprise_format::tree::Tree;
use reprise_format::wal;
use reprise_fuzz::{
    HEADER_AAD, PASSPHRASE, WAL_HEADER_AAD, ctx, directory_plain, fixed_body, fixed_header, fixed_recovery_file, key_file_for, key_file_plaintext,
    sample_pack, sample_tree, snapshot_parts, wal_body_aad, wal_header_for, wal_parts,
};

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("create seed dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let root: PathBuf = std::env::args_os()
        .nth(1)
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"), PathBuf::from);
    let ctx = ctx();
    let s = &ctx.secrets;
    let catalog = ctx.catalog_key();

    // Packs.
    let (pack_bytes, entries, raws) = sample_pack(s);
    write(&root, "pack_raw", "three-blobs", &pack_bytes);
    let (small, small_entries, _) = {
        let mut w = pack::PackWriter::new(&s.write.recovery_public, 64);
        let raw = b"x".to_vec();
        let e = w.add(reprise_format::BlobKind::Data, s.write.id_key.blob_id(&raw), 1, pack::STORED, &raw);
        let (_, b, es) = w.finish(catalog);
        (b, es, e)
    };
    write(&root, "pack_raw", "one-blob", &small);

    for (name, bytes, es) in [("three-blobs", &pack_bytes, &entries), ("one-blob", &small, &small_entries)] {
        let dlen = pack::directory_len(&bytes[bytes.len() - pack::TRAILER_LEN..]).expect("trailer");
        let blob_area = bytes.len() - pack::HEADER_LEN - dlen - pack::TRAILER_LEN;
        let mut input = (bytes.len() as u64).to_le_bytes().to_vec();
        input.extend_from_slice(&(blob_area as u16).to_le_bytes());
        input.extend_from_slice(&directory_plain(es));
        write(&root, "pack_directory", name, &input);
    }
    let mut empty_dir = 1000u64.to_le_bytes().to_vec();
    empty_dir.extend_from_slice(&[0, 0]);
    empty_dir.extend_from_slice(&directory_plain(&[]));
    write(&root, "pack_directory", "empty", &empty_dir);

    // pack_blob: kind, flags, offset, raw_length, id, compression || payload.
    let blob_input = |kind: u8, flags: u8, raw: &[u8], compressed: bool| {
        let (c, payload) = if compressed {
            (pack::ZSTD, zstd::bulk::compress(raw, 3).expect("zstd"))
        } else {
            (pack::STORED, raw.to_vec())
        };
        let mut v = vec![kind, flags];
        v.extend_from_slice(&(pack::HEADER_LEN as u32).to_le_bytes());
        v.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        v.extend_from_slice(&s.write.id_key.blob_id(raw).0);
        v.push(c);
        v.extend_from_slice(&payload);
        v
    };
    write(&root, "pack_blob", "stored", &blob_input(0, 3, &raws[0], false));
    write(&root, "pack_blob", "zstd", &blob_input(0, 3, &raws[1], true));
    write(&root, "pack_blob", "tree-zstd", &blob_input(1, 3, &raws[2], true));
    write(&root, "pack_blob", "round-trip", &blob_input(0, 0x0F | 0x20, &raws[1], false));

    // Index files.
    let idx = IndexFile {
        supersedes: vec![Id([0xEE; 32])],
        packs: vec![
            IndexedPack { id: Id::of_object(&pack_bytes), length: pack_bytes.len() as u64, blobs: entries.clone() },
            IndexedPack { id: Id::of_object(&small), length: small.len() as u64, blobs: small_entries.clone() },
        ],
    };
    let indexes = [("two-packs", idx), ("empty", IndexFile::default())];
    for (name, idx) in &indexes {
        let plain = idx.encode_plain();
        write(&root, "index_plain", name, &plain);
        write(&root, "index_open_raw", name, &idx.seal(catalog));
        let mut m0 = vec![0u8];
        m0.extend_from_slice(&plain);
        write(&root, "index_open_sealed", &format!("{name}-plain"), &m0);
        let mut m1 = vec![1u8];
        m1.extend_from_slice(&zstd::bulk::compress(&plain, 3).expect("zstd"));
        write(&root, "index_open_sealed", &format!("{name}-zstd"), &m1);
    }

    // Snapshots.
    let minimal_header = SnapshotHeader {
        version: 1,
        time: jiff::Timestamp::from_second(0).expect("epoch"),
        host: String::new(),
        component: "c".into(),
        kind: "stdin".into(),
        tags: vec![],
        summary: Summary::default(),
        parent: None,
        labels: Default::default(),
    };
    let minimal_body = SnapshotBody { tree: Id([0; 32]), paths: vec![], excludes: vec![], user: String::new(), errors: vec!["e".into()], labels: [("k".to_string(), "v".to_string())].into_iter().collect() };
    for (name, h, b) in [("full", fixed_header(), fixed_body()), ("minimal", minimal_header, minimal_body)] {
        let object = snapshot::seal(&h, &b, catalog, &s.write.recovery_public);
        write(&root, "snapshot_raw", name, &object);
        let (sealed_h, sealed_b) = snapshot_parts(&object);
        let h_plain = catalog.open_with_nonce_prefix(HEADER_AAD, sealed_h, "header").expect("header");
        write(&root, "snapshot_header", name, &h_plain);
        let b_plain = ctx.recovery().open(snapshot::BODY_INFO, sealed_b, "body").expect("body");
        write(&root, "snapshot_body", name, &b_plain);
    }

    // Legal holds: the CBOR plaintext.
    let h = reprise_format::hold::Hold { snapshot: Id([3; 32]), reason: "litigation 2026-117".into(), time: "2026-11-21T10:00:00Z".parse().expect("time"), host: "db1".into(), user: "root".into() };
    let sealed = reprise_format::hold::seal(&h, catalog);
    write(&root, "hold_sealed", "minimal", &catalog.open_with_nonce_prefix(reprise_format::hold::HOLD_AAD, &sealed, "hold").expect("hold"));
    // Prune marks: the CBOR plaintext.
    let m = reprise_format::mark::PruneMark { time: "2026-11-21T10:00:00Z".parse().expect("time"), grace_secs: 86_400, packs: vec![Id([4; 32]), Id([5; 32])], host: "ops".into(), user: "root".into() };
    let sealed = reprise_format::mark::seal(&m, catalog);
    write(&root, "prune_mark_sealed", "minimal", &catalog.open_with_nonce_prefix(reprise_format::mark::MARK_AAD, &sealed, "prune mark").expect("mark"));

    // Ledger: an entry's CBOR plaintext, a record, the markers.
    let entry = reprise_format::ledger::EntryRecord {
        version: 1,
        index: 7,
        salt: vec![9; 16],
        time: "2026-11-21T10:00:00Z".parse().expect("time"),
        host: "db1".into(),
        user: "postgres".into(),
        operation: "hold-add".into(),
        component: Some("records".into()),
        snapshots: vec![Id([3; 32])],
        counts: [("files".to_owned(), 12)].into(),
        sizes: [("bytes".to_owned(), 4096)].into(),
        refs: [("hold".to_owned(), "ab".repeat(32))].into(),
        reason: Some("litigation 2026-117".into()),
        result: "ok".into(),
        error: None,
    };
    write(&root, "ledger_entry_sealed", "hold-add", &entry.encode());
    let record = reprise_format::ledger::Record {
        sealed_entry: reprise_format::ledger::seal_entry(&entry.encode(), catalog),
        checkpoint: "reprise-ledger/00000000000000000000000000000000\n8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\u{2014} reprise-ledger/0000000000000000 AAAAAA==\n".as_bytes().to_vec(),
        frontier: vec![[1; 32]],
    };
    write(&root, "ledger_record_raw", "record", &record.encode());
    let id = reprise_format::ledger::LedgerId([0xab; 16]);
    write(&root, "ledger_record_raw", "site", &reprise_format::ledger::SiteMarker::new(id).to_bytes());
    write(&root, "ledger_record_raw", "witness", &reprise_format::ledger::WitnessMarker::to_bytes());

    // Trees.
    write(&root, "tree_decode", "four-nodes", &sample_tree().encode());
    write(&root, "tree_decode", "empty", &Tree::default().encode());

    // Key files.
    let full = KeyFile::seal(s, PASSPHRASE, KdfParams::insecure_fast(), "host", "user", "label").expect("seal");
    write(&root, "keyfile_raw", "full", &full.to_bytes());
    let wo = KeyFile::seal(&s.write_only(), PASSPHRASE, KdfParams::insecure_fast(), "host", "user", "").expect("seal");
    write(&root, "keyfile_raw", "write-only", &wo.to_bytes());
    write(&root, "keyfile_sealed", "full", &key_file_plaintext(ctx, &key_file_for(ctx, s)));
    write(&root, "keyfile_sealed", "write-only", &key_file_plaintext(ctx, &key_file_for(ctx, &s.write_only())));

    // Recovery key file and config.
    write(&root, "recovery_file", "fixed", &fixed_recovery_file());
    write(&root, "recovery_file", "exported", &s.to_recovery_file().expect("full"));
    write(&root, "recovery_file", "write-credential", &s.to_write_credential());
    let mut config = RepositoryConfig::new(Id([0x01; 32]), ChunkerParams::default());
    config.created = jiff::Timestamp::from_second(1_700_000_000).expect("time");
    write(&root, "config", "default", &config.to_bytes());

    // WAL files: one that compresses, one stored, one empty.
    let segment = {
        let mut v = vec![0u8; 8192];
        v[..16].copy_from_slice(b"\x10\xd1\x05\x00\x01\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00");
        v
    };
    let wal_files: [(&str, &str, Vec<u8>); 3] = [
        ("segment", "000000010000000000000003", segment),
        ("history", "00000002.history", b"1\t0/3000158\tno recovery target specified\n".to_vec()),
        ("empty", "000000010000000000000004.partial", Vec::new()),
    ];
    for (seed, name, plain) in &wal_files {
        let h = wal_header_for(s, name, plain);
        let object = wal::seal(&h, plain, 3, catalog, &s.write.recovery_public);
        write(&root, "wal_raw", seed, &object);
        let (sealed_h, sealed_k, sealed_b) = wal_parts(&object);
        let h_plain = catalog.open_with_nonce_prefix(WAL_HEADER_AAD, sealed_h, "WAL header").expect("header");
        let key: [u8; 32] = ctx.recovery().open(wal::WAL_KEY_INFO, sealed_k, "WAL key").expect("key").try_into().expect("32 bytes");
        let mut body = sealed_b.to_vec();
        reprise_format::crypto::SymmetricKey::from_bytes(key)
            .open_in_place([0; 12], &wal_body_aad(name.as_bytes()), &mut body, "WAL body")
            .expect("body");
        let mut input = (h_plain.len() as u16).to_le_bytes().to_vec();
        input.extend_from_slice(&h_plain);
        input.push(0);
        input.extend_from_slice(&body);
        write(&root, "wal_sealed", seed, &input);
    }

    eprintln!("seeds written under {}", root.display());
}
