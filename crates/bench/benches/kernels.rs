//! Kernel benchmarks: the per-byte work of a backup, each next to the limit
//! this CPU puts on it, measured in the same harness.
//!
//! Groups (`bench/kernels.sh` turns them into a table with ratios):
//!
//! * `limit/*`: what the hardware and the underlying libraries can do:
//!   a large memcpy (memory bandwidth), unkeyed BLAKE3 on one thread and on
//!   every core (rayon), AES-256-GCM straight from `ring` with its key
//!   expanded once, zstd level 3 straight from the `zstd` crate;
//! * `kernel/*`: the same work through reprise's own functions: FastCDC
//!   (`Chunker::cut`), keyed BLAKE3 (`IdKey::blob_id`), AES-256-GCM
//!   (`SymmetricKey::seal_in_place`), `pack::compress` at level 3, and
//!   `PackWriter::add`;
//! * `path/*`: the whole single-threaded path a new chunk takes during a
//!   backup (`cut` → `blob_id` → `compress` → `PackWriter::add` → `finish`).
//!
//! Per-chunk kernels run over 16 KiB pieces: the default average chunk size,
//! so that per-call costs (key schedule, allocation) weigh as they do in a
//! real backup. Streaming kernels run over an 8 MiB buffer.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use reprise_demo::datasets::Rng;
use reprise_format::keys::DomainId;
use reprise_format::sign::SigningKey;
use reprise_format::{BlobKind, Id};
use reprise_format::chunker::{ChunkPolicy, Chunker, ChunkerParams};
use reprise_format::crypto::{IdKey, RecoverySecretKey, SymmetricKey};
use reprise_format::pack::{PackWriter, compress};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// Streaming input size.
const BUF: usize = 8 << 20;
/// Per-chunk input size: the default average chunk.
const CHUNK: usize = 16 << 10;
/// Large memcpy: well past the 32 MiB L3 of the machines we run on.
const MEMCPY: usize = 256 << 20;

const WORDS: &[&str] = &[
    "patient", "intervention", "chirurgie", "pediatrique", "consentement", "eclaire", "anesthesie", "risque", "parent", "tuteur",
    "signature", "date", "hopital", "service", "ordonnance", "posologie", "matin", "soir", "pendant", "jours", "compte", "rendu",
    "operatoire", "suites", "simples", "controle", "semaines",
];

/// Incompressible bytes (signature images, embedded fonts).
fn random_data(n: usize) -> Vec<u8> {
    Rng::new(7).bytes(n)
}

/// Compressible text, the per-patient part of a signed document.
fn text_data(n: usize) -> Vec<u8> {
    let mut rng = Rng::new(11);
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        out.extend_from_slice(WORDS[rng.range(0, WORDS.len() as u64 - 1) as usize].as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

/// A signed-document-like mix: 3/4 incompressible, 1/4 text, in 64 KiB runs.
fn mixed_data(n: usize) -> Vec<u8> {
    let (r, t) = (random_data(n), text_data(n));
    let mut out = Vec::with_capacity(n);
    for (i, (a, b)) in r.chunks(64 << 10).zip(t.chunks(64 << 10)).enumerate() {
        out.extend_from_slice(if i % 4 == 3 { b } else { a });
    }
    out
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>, bytes: usize) {
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
}

fn limits(c: &mut Criterion) {
    let random = random_data(BUF);
    let text = text_data(BUF);

    let mut g = c.benchmark_group("limit");
    configure(&mut g, MEMCPY);
    let src = random_data(MEMCPY);
    let mut dst = vec![0u8; MEMCPY];
    g.bench_function("memcpy-256MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        });
    });
    drop((src, dst));

    configure(&mut g, BUF);
    let mut dst = vec![0u8; CHUNK];
    g.bench_function("memcpy-16KiB-pieces", |b| {
        b.iter(|| {
            for piece in random.chunks(CHUNK) {
                dst.copy_from_slice(black_box(piece));
                black_box(&dst);
            }
        });
    });
    g.bench_function("blake3-unkeyed-1thread-16KiB", |b| {
        b.iter(|| {
            for piece in random.chunks(CHUNK) {
                black_box(blake3::hash(black_box(piece)));
            }
        });
    });
    g.bench_function("blake3-unkeyed-1thread-8MiB", |b| b.iter(|| black_box(blake3::hash(black_box(&random)))));
    g.bench_function("blake3-unkeyed-allcores-8MiB", |b| {
        b.iter(|| black_box(blake3::Hasher::new().update_rayon(black_box(&random)).finalize()));
    });
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("AES-256 key"));
    let mut buf = Vec::with_capacity(CHUNK + 16);
    g.bench_function("ring-aes256gcm-16KiB", |b| {
        b.iter(|| {
            for (i, piece) in random.chunks(CHUNK).enumerate() {
                buf.clear();
                buf.extend_from_slice(piece);
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&(i as u64).to_le_bytes());
                key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&[0u8; 33]), &mut buf).expect("seal");
                black_box(&buf);
            }
        });
    });
    let mut big = random.clone();
    g.bench_function("ring-aes256gcm-8MiB", |b| {
        b.iter(|| {
            let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key([0u8; 12]), Aad::empty(), &mut big).expect("seal");
            black_box(tag.as_ref()[0]);
        });
    });
    g.bench_function("zstd-bulk-l3-text-16KiB", |b| {
        b.iter(|| {
            for piece in text.chunks(CHUNK) {
                black_box(zstd::bulk::compress(black_box(piece), 3).expect("zstd"));
            }
        });
    });
    g.bench_function("zstd-bulk-l3-random-16KiB", |b| {
        b.iter(|| {
            for piece in random.chunks(CHUNK) {
                black_box(zstd::bulk::compress(black_box(piece), 3).expect("zstd"));
            }
        });
    });
    g.finish();
}

fn kernels(c: &mut Criterion) {
    let random = random_data(BUF);
    let text = text_data(BUF);
    let mixed = mixed_data(BUF);
    let mut g = c.benchmark_group("kernel");
    configure(&mut g, BUF);

    let chunker = Chunker::new(ChunkerParams::default(), 0x5eed);
    g.bench_function("fastcdc-cut-random-8MiB", |b| b.iter(|| black_box(chunker.cut(black_box(&random), ChunkPolicy::ContentDefined))));
    g.bench_function("fastcdc-cut-text-8MiB", |b| b.iter(|| black_box(chunker.cut(black_box(&text), ChunkPolicy::ContentDefined))));

    let id_key = IdKey::generate();
    g.bench_function("keyed-blake3-blob_id-16KiB", |b| {
        b.iter(|| {
            for piece in random.chunks(CHUNK) {
                black_box(id_key.blob_id(black_box(piece)));
            }
        });
    });
    g.bench_function("keyed-blake3-blob_id-8MiB", |b| b.iter(|| black_box(id_key.blob_id(black_box(&random)))));

    let sym = SymmetricKey::generate();
    let mut buf = Vec::with_capacity(CHUNK + 16);
    g.bench_function("aes256gcm-seal_in_place-16KiB", |b| {
        b.iter(|| {
            for (i, piece) in random.chunks(CHUNK).enumerate() {
                buf.clear();
                buf.extend_from_slice(piece);
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&(i as u64).to_le_bytes());
                sym.seal_in_place(nonce, &[0u8; 33], &mut buf);
                black_box(&buf);
            }
        });
    });

    g.bench_function("compress-l3-text-16KiB", |b| {
        b.iter(|| {
            for piece in text.chunks(CHUNK) {
                black_box(compress(black_box(piece), 3));
            }
        });
    });
    g.bench_function("compress-l3-random-16KiB", |b| {
        b.iter(|| {
            for piece in random.chunks(CHUNK) {
                black_box(compress(black_box(piece), 3));
            }
        });
    });
    g.bench_function("compress-l3-random-64KiB", |b| {
        b.iter(|| {
            for piece in random.chunks(64 << 10) {
                black_box(compress(black_box(piece), 3));
            }
        });
    });

    // PackWriter::add on already-compressed (here: stored) payloads: the
    // seal plus the copies into the pack buffer; a fresh pack per 8 MiB.
    let (_sk, pk) = RecoverySecretKey::generate();
    let ids: Vec<_> = random.chunks(CHUNK).map(|p| id_key.blob_id(p)).collect();
    g.bench_function("packwriter-add-16KiB", |b| {
        b.iter(|| {
            let mut w = PackWriter::new(&pk, BUF);
            for (piece, id) in random.chunks(CHUNK).zip(&ids) {
                black_box(w.add(BlobKind::Data, *id, piece.len() as u32, 0, piece));
            }
            black_box(w.len());
        });
    });
    g.finish();

    let mut g = c.benchmark_group("path");
    configure(&mut g, BUF);
    let catalog = SymmetricKey::generate();
    // Every pack is signed since format 2: the signature is part of the work.
    let (signer, repository) = (SigningKey::generate(), Id::of_object(b"bench repository"));
    for (name, data) in [("mixed", &mixed), ("random", &random), ("text", &text)] {
        g.bench_function(format!("new-chunk-1thread-{name}-8MiB"), |b| {
            b.iter(|| {
                let mut w = PackWriter::new(&pk, BUF);
                for (o, l) in chunker.cut(data, ChunkPolicy::ContentDefined) {
                    let raw = &data[o..o + l];
                    let id = id_key.blob_id(raw);
                    let (comp, payload) = compress(raw, 3);
                    w.add(BlobKind::Data, id, raw.len() as u32, comp, &payload);
                }
                black_box(w.finish(&DomainId::ADMIN, &catalog, &signer, &repository));
            });
        });
    }
    g.finish();
}

criterion_group!(benches, limits, kernels);
criterion_main!(benches);
