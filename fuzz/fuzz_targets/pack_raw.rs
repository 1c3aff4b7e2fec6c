//! Raw bytes as a whole pack: `directory_of`, `directory_len`,
//! `decode_directory`, `open_pack_key` and (when both succeed) `open_blob`, with
//! the fixed catalog and recovery keys. Random bytes mostly stop at the magic,
//! bounds and authentication checks; the seeds are valid packs, so mutations of
//! their framing (lengths, trailer, header) are exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::pack;
use reprise_fuzz::ctx;

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let key = pack::open_pack_key(data, ctx.recovery());
    let tail = pack::PackTail::parse(&data[data.len() - (pack::PackTail::read_len(data.len() as u64) as usize)..]);
    if let Ok(t) = &tail {
        let _ = pack::decode_directory(data, ctx.catalog_key(), data.len() as u64, t);
    }
    let _ = pack::verify(data, &ctx.repository());
    let Ok(entries) = pack::directory_of(data, ctx.catalog_key()) else { return };

    // What directory_of promises: every blob lies between the header and the directory.
    let t = pack::tail_of(data).expect("directory_of checked the trailer");
    let blob_end = data.len() - t.trailer_len - t.directory_len;
    for e in &entries {
        assert!(e.offset as usize >= pack::HEADER_LEN);
        assert!(e.length as usize >= pack::BLOB_OVERHEAD);
        assert!(e.raw_length <= pack::MAX_BLOB_LEN);
        assert!(e.offset as usize + e.length as usize <= blob_end, "{e:?} past blob end {blob_end}");
    }
    let Ok(key) = key else { return };
    for e in &entries {
        let ct = &data[e.offset as usize..e.offset as usize + e.length as usize];
        if let Ok(raw) = pack::open_blob(&key, ctx.id_key(), e, ct) {
            assert_eq!(raw.len(), e.raw_length as usize);
            assert_eq!(ctx.id_key().blob_id(&raw), e.id);
        }
    }
});
