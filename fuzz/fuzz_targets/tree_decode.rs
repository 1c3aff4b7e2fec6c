//! `tree::Tree::decode` on raw bytes (CBOR): trees are plaintext once their
//! blob is opened, so no sealing is needed.
//!
//! A decoded tree must satisfy the rules decode enforces (valid names, sorted
//! and unique, directories with subtrees, symlinks with targets); encoding it is
//! deterministic; the encoding decodes to an equal tree and re-encodes to the
//! same bytes (a fixed point, which is what makes unchanged directories dedup).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::tree::{NodeKind, Tree, validate_name};

fuzz_target!(|data: &[u8]| {
    let Ok(t) = Tree::decode(data) else { return };
    for n in &t.nodes {
        assert!(validate_name(&n.name).is_ok());
        assert!(n.kind != NodeKind::Dir || n.subtree.is_some());
        assert!(n.kind != NodeKind::Symlink || n.target.is_some());
    }
    assert!(t.nodes.windows(2).all(|w| w[0].name < w[1].name));
    let bytes = t.encode();
    assert_eq!(bytes, t.encode(), "tree encoding is not deterministic");
    let back = Tree::decode(&bytes).expect("an encoded tree decodes");
    assert_eq!(back, t, "tree round trip");
    assert_eq!(back.encode(), bytes, "tree encoding is not a fixed point");
});
