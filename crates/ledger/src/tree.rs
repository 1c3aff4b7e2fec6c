//! The Merkle tree of RFC 6962 / RFC 9162, in the two shapes the ledger
//! needs.
//!
//! * [`Frontier`]: the roots of the perfect subtrees that make up a tree
//!   of `size` leaves (one per bit set in `size`, largest first). It is
//!   all an appender needs to compute the next root, so each record
//!   stores the frontier of the tree it ends, and appending reads one
//!   object whatever the length of the log. `tlog_tiles` has no such type
//!   (Go's sumdb sequencer keeps every stored hash in a database instead),
//!   hence these few lines; its [`tree_hash`] is what the property tests
//!   hold them to.
//! * [`TreeHashes`]: every stored hash of a tree, in `tlog_tiles`'s layout,
//!   built from the leaves; `tlog_tiles` computes roots and inclusion and
//!   consistency proofs over it. `verify` and `proof` rebuild it from the
//!   entries, which they read anyway.
//!
//! Hashes: leaf = SHA-256(0x00 || entry CBOR), node = SHA-256(0x01 || left
//! || right), empty tree = SHA-256("").

pub use tlog_tiles::{EMPTY_HASH, Hash, node_hash, record_hash};
use tlog_tiles::{HashReader, stored_hash_index, tree_hash};

/// The compact range `[0, size)` of a tree (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    #[must_use]
    pub fn empty() -> Frontier {
        Frontier { size: 0, hashes: Vec::new() }
    }

    /// A frontier read from storage: refused unless it has exactly one
    /// hash per bit set in `size`.
    #[must_use]
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Frontier> {
        (hashes.len() == size.count_ones() as usize).then_some(Frontier { size, hashes })
    }

    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    #[must_use]
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Adds a leaf: merges equal subtrees from the right, like a binary
    /// counter carries.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut carried = self.size;
        while carried & 1 == 1 {
            let left = self.hashes.pop().expect("one hash per set bit");
            h = node_hash(left, h);
            carried >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The tree's root: RFC 6962 splits at the largest power of two, so the
    /// subtrees fold from the right.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        let Some(&last) = it.next() else { return EMPTY_HASH };
        it.fold(last, |acc, &left| node_hash(left, acc))
    }

    /// The leaves `[first, end)` covered by the first subtree where two
    /// frontiers of one size differ: where to look for an altered entry.
    #[must_use]
    pub fn first_difference(&self, other: &Frontier) -> Option<(u64, u64)> {
        if self.size != other.size {
            return Some((0, self.size.max(other.size)));
        }
        let mut start = 0;
        for (i, (a, b)) in self.hashes.iter().zip(&other.hashes).enumerate() {
            let width = subtree_width(self.size, i);
            if a != b {
                return Some((start, start + width));
            }
            start += width;
        }
        None
    }
}

/// The number of leaves under the `i`-th subtree (largest first) of a
/// tree of `size` leaves: the `i`-th set bit of `size` from the top.
fn subtree_width(size: u64, i: usize) -> u64 {
    let mut seen = 0;
    for bit in (0..64).rev() {
        if size & (1 << bit) != 0 {
            if seen == i {
                return 1 << bit;
            }
            seen += 1;
        }
    }
    0
}

/// Every stored hash of a tree, in memory (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct TreeHashes {
    size: u64,
    hashes: Vec<Hash>,
}

impl TreeHashes {
    #[must_use]
    pub fn new() -> TreeHashes {
        TreeHashes::default()
    }

    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let new = tlog_tiles::stored_hashes_for_record_hash(self.size, leaf, self).expect("every hash of the tree is in memory");
        debug_assert_eq!(self.hashes.len() as u64, stored_hash_index(0, self.size));
        self.hashes.extend(new);
        self.size += 1;
    }

    /// The root of the tree made of the first `size` leaves.
    #[must_use]
    pub fn root(&self, size: u64) -> Hash {
        assert!(size <= self.size, "root of a tree larger than the log");
        tree_hash(size, self).expect("every hash of the tree is in memory")
    }

    /// The RFC 9162 inclusion proof (audit path, leaf to root) of leaf
    /// `index` in the tree of `size` leaves.
    #[must_use]
    pub fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        assert!(index < size && size <= self.size, "inclusion proof outside the log");
        tlog_tiles::prove_record(size, index, self).expect("every hash of the tree is in memory")
    }

    /// The RFC 9162 consistency proof from the tree of `old` leaves to the
    /// tree of `new` leaves.
    #[must_use]
    pub fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        assert!(0 < old && old <= new && new <= self.size, "consistency proof outside the log");
        tlog_tiles::prove_tree(new, old, self).expect("every hash of the tree is in memory")
    }
}

impl HashReader for TreeHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::tlog::Error> {
        indexes.iter().map(|&i| self.hashes.get(i as usize).copied().ok_or(tlog_tiles::tlog::Error::IndexesNotInTree)).collect()
    }
}

/// Checks an inclusion proof (`tlog_tiles::check_record`).
#[must_use]
pub fn check_inclusion(proof: &[Hash], size: u64, root: Hash, index: u64, leaf: Hash) -> bool {
    tlog_tiles::check_record(&proof.to_vec(), size, root, index, leaf).is_ok()
}

/// Checks a consistency proof (`tlog_tiles::check_tree`).
#[must_use]
pub fn check_consistency(proof: &[Hash], new_size: u64, new_root: Hash, old_size: u64, old_root: Hash) -> bool {
    tlog_tiles::check_tree(&proof.to_vec(), new_size, new_root, old_size, old_root).is_ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn leaf(i: u64) -> Hash {
        record_hash(&i.to_le_bytes())
    }

    /// RFC 6962's recursive definition, written out plainly.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_HASH,
            1 => leaves[0],
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(mth(&leaves[..k]), mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn rfc6962_empty_tree_and_known_shapes() {
        assert_eq!(Frontier::empty().root(), EMPTY_HASH);
        let leaves: Vec<Hash> = (0..7).map(leaf).collect();
        let mut f = Frontier::empty();
        for (i, l) in leaves.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.root(), mth(&leaves[..=i]), "size {}", i + 1);
        }
        assert_eq!(f.hashes().len(), 3);
        assert!(Frontier::from_parts(7, f.hashes().to_vec()).is_some());
        assert!(Frontier::from_parts(8, f.hashes().to_vec()).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The frontier's root, `tlog_tiles`'s root over stored hashes and
        /// RFC 6962's definition agree at every size.
        #[test]
        fn frontier_and_stored_hashes_agree_with_rfc6962(n in 1u64..300) {
            let leaves: Vec<Hash> = (0..n).map(leaf).collect();
            let mut f = Frontier::empty();
            let mut t = TreeHashes::new();
            for (i, l) in leaves.iter().enumerate() {
                f.push(*l);
                t.push(*l);
                let expected = mth(&leaves[..=i]);
                prop_assert_eq!(f.root(), expected);
                prop_assert_eq!(t.root(i as u64 + 1), expected);
            }
        }

        /// Every inclusion proof checks, and fails for another leaf, another
        /// index or another root.
        #[test]
        fn inclusion_proofs_check_and_catch_substitution(n in 1u64..200, pick in any::<prop::sample::Index>()) {
            let mut t = TreeHashes::new();
            for i in 0..n { t.push(leaf(i)); }
            let index = pick.index(n as usize) as u64;
            for size in [index + 1, n] {
                let root = t.root(size);
                let proof = t.inclusion(index, size);
                prop_assert!(check_inclusion(&proof, size, root, index, leaf(index)));
                prop_assert!(!check_inclusion(&proof, size, root, index, leaf(index + 1_000)));
                prop_assert!(!check_inclusion(&proof, size, leaf(0), index, leaf(index)) || size == 1);
                if size > 1 {
                    let other = (index + 1) % size;
                    prop_assert!(!check_inclusion(&proof, size, root, other, leaf(index)));
                }
            }
        }

        /// Consistency proofs between any two sizes check; a tree whose old
        /// part was changed fails them.
        #[test]
        fn consistency_proofs_check_and_catch_rewritten_history(n in 2u64..150, a in any::<prop::sample::Index>(), changed in any::<prop::sample::Index>()) {
            let mut t = TreeHashes::new();
            for i in 0..n { t.push(leaf(i)); }
            let old = a.index(n as usize) as u64 + 1;
            let proof = t.consistency(old, n);
            prop_assert!(check_consistency(&proof, n, t.root(n), old, t.root(old)));
            // The same log with one entry of the old tree replaced.
            let c = changed.index(old as usize) as u64;
            let mut forged = TreeHashes::new();
            for i in 0..n { forged.push(if i == c { leaf(i + 10_000) } else { leaf(i) }); }
            let forged_proof = forged.consistency(old, n);
            prop_assert!(!check_consistency(&forged_proof, n, forged.root(n), old, t.root(old)));
        }

        /// Two frontiers of one size differ first in the subtree holding the
        /// first changed leaf.
        #[test]
        fn first_difference_holds_the_changed_leaf(n in 1u64..300, changed in any::<prop::sample::Index>()) {
            let c = changed.index(n as usize) as u64;
            let mut a = Frontier::empty();
            let mut b = Frontier::empty();
            for i in 0..n {
                a.push(leaf(i));
                b.push(if i == c { leaf(i + 10_000) } else { leaf(i) });
            }
            let (first, end) = a.first_difference(&b).expect("they differ");
            prop_assert!(first <= c && c < end && end <= n);
            prop_assert_eq!(a.first_difference(&a.clone()), None);
        }
    }
}
