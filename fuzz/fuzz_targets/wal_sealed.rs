//! WAL files behind the authentication checks. Input:
//! `u16 H || header CBOR (H bytes) || flags u8 || body plaintext`
//! (body plaintext = compression byte || payload).
//!
//! The header is sealed under the fixed catalog key (AAD "reprise wal header
//! v1"); the body under a fixed file key (HPKE-sealed once to the recovery key)
//! with nonce 0 and AAD "reprise wal v1" || the header's name, so `wal::open`
//! reaches the header CBOR parser and then the body's compression byte, zstd
//! (bounded by the header's size), size and hash checks.
//!
//! flags bit 0: make the header's size and hash describe the body's real
//! content (stored payload, or its zstd decompression), re-encode it, and
//! require `open` to return exactly that content; bit 1: round trip the
//! decoded header with the rest of the input as file content through
//! `wal::seal` / `wal::open`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::{pack, wal};
use reprise_fuzz::{Cursor, DOMAIN, WAL_HEADER_AAD, ctx, seal_fixed, wal_body_aad, wal_object};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let (catalog, id_key, recovery) = (ctx.catalog_key(), ctx.id_key(), ctx.recovery());
    let mut c = Cursor(data);
    let h_len = usize::from(c.u16());
    let rest = c.rest();
    let (header_cbor, rest) = rest.split_at(h_len.min(rest.len()));
    let mut c = Cursor(rest);
    let flags = c.u8();
    let body_plain = c.rest();

    let sealed_h = seal_fixed(catalog, WAL_HEADER_AAD, header_cbor);
    let header = wal::open_header(&wal_object(&sealed_h, &[], &[]), catalog);
    let name = header.as_ref().map(|h| h.name.as_bytes()).unwrap_or_default();
    let seal_body = |name: &[u8], plain: &[u8]| {
        let mut b = plain.to_vec();
        ctx.wal_file_key.seal_in_place([0; 12], &wal_body_aad(name), &mut b);
        b
    };
    let object = wal_object(&sealed_h, &ctx.wal_sealed_key, &seal_body(name, body_plain));
    assert_eq!(wal::open_header(&object, catalog), header);
    let opened = wal::open(&object, catalog, id_key, recovery);
    match (&header, &opened) {
        (Err(_), Ok(_)) => panic!("open accepted a WAL file whose header does not decode"),
        (Ok(h), Ok((h2, plain))) => {
            assert_eq!(h, h2);
            assert_eq!(plain.len() as u64, h.size);
            assert_eq!(id_key.blob_id(plain), h.hash);
        }
        _ => {}
    }
    let Ok(h) = header else { return };

    if flags & 1 != 0 {
        let content = match body_plain.first() {
            Some(&pack::STORED) => Some(body_plain[1..].to_vec()),
            Some(&pack::ZSTD) => zstd::bulk::decompress(&body_plain[1..], 1 << 20).ok(),
            _ => None,
        };
        if let Some(content) = content {
            let mut h2 = h.clone();
            h2.size = content.len() as u64;
            h2.hash = id_key.blob_id(&content);
            let mut cbor = Vec::new();
            ciborium::into_writer(&h2, &mut cbor).expect("CBOR encodes in memory");
            let object = wal_object(&seal_fixed(catalog, WAL_HEADER_AAD, &cbor), &ctx.wal_sealed_key, &seal_body(h2.name.as_bytes(), body_plain));
            assert_eq!(wal::open(&object, catalog, id_key, recovery), Ok((h2, content)), "a well-formed WAL file was not returned intact");
        }
    }
    if flags & 2 != 0 {
        let mut h2 = h.clone();
        h2.size = body_plain.len() as u64;
        h2.hash = id_key.blob_id(body_plain);
        let again = wal::seal(&h2, body_plain, 1, &DOMAIN, catalog, &ctx.secrets.recovery_public, &ctx.signer, &ctx.repository());
        assert_eq!(wal::open(&again, catalog, id_key, recovery), Ok((h2, body_plain.to_vec())), "WAL round trip");
    }
});
