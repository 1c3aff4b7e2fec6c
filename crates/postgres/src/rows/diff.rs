//! The three-way comparison at the heart of `recover-rows`.
//!
//! A table has three states: *before* the accident (the scratch restore at
//! `--at`), *after* it (the scratch restore right after the accident's
//! commit), and *now* (the live table). Comparing before with after says
//! what the accident did — and only that: a row equal in both was not
//! touched and is never written, whatever happened to it since. Comparing
//! after with now says, for each damaged row, whether anyone worked on it
//! since: untouched since → repaired; changed since → a conflict, left
//! alone unless the user chooses otherwise.
//!
//! Rows are matched by primary key, except where the write-ahead log shows
//! that the accident's UPDATE moved a row to another key: the row's
//! identity is then followed from its place before to its place after
//! (`successors`), so the change is undone as one UPDATE instead of a
//! delete and an insert.
//!
//! Values are PostgreSQL's own text representation of each column (as
//! `COPY` writes it), compared as strings: equal text, equal value.

use std::collections::HashMap;

/// Where a row version is stored: relation file, block, line pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TupleLoc {
    pub relfilenode: u32,
    pub block: u32,
    pub offset: u16,
}

/// One row of a state: its values in the compared columns, where it was
/// stored and by which transaction (scratch states only), and whether the
/// user's `--where` predicate holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub values: Vec<Option<String>>,
    pub loc: Option<TupleLoc>,
    pub xmin: u32,
    pub selected: bool,
}

/// A primary key's values, as text.
pub(crate) type Key = Vec<Option<String>>;

pub(crate) fn key_of(values: &[Option<String>], key: &[usize]) -> Key {
    key.iter().map(|&i| values[i].clone()).collect()
}

/// What the accident did to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Damage {
    Deleted,
    Updated,
    Inserted,
    /// An UPDATE that changed the primary key (followed through the WAL).
    KeyChanged,
}

/// One damaged row: its version before and after the accident (indexes
/// into the two states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Case {
    pub damage: Damage,
    pub before: Option<usize>,
    pub after: Option<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct AccidentRows {
    pub cases: Vec<Case>,
    /// Rows equal before and after: never written.
    pub untouched: u64,
    /// Damaged rows the `--where` predicate left out.
    pub filtered: u64,
}

/// Compares the table before and after the accident. `successors` maps a
/// row of `before` to the place its newest version has in `after` and the
/// transaction that wrote it there (from the WAL's UPDATE records).
pub(crate) fn damage(before: &[Row], after: &[Row], key: &[usize], successors: &HashMap<usize, (TupleLoc, u32)>) -> AccidentRows {
    let after_by_key: HashMap<Key, usize> = after.iter().enumerate().map(|(j, r)| (key_of(&r.values, key), j)).collect();
    let after_by_loc: HashMap<TupleLoc, usize> = after.iter().enumerate().filter_map(|(j, r)| r.loc.map(|l| (l, j))).collect();
    let before_keys: HashMap<Key, usize> = before.iter().enumerate().map(|(i, r)| (key_of(&r.values, key), i)).collect();
    let mut out = AccidentRows::default();
    let mut after_claimed = vec![false; after.len()];
    let mut cases = Vec::new();
    for (i, row) in before.iter().enumerate() {
        let k = key_of(&row.values, key);
        // A successor counts only if the version found there was written
        // by the updating transaction (a freed slot may hold another row).
        let moved = successors.get(&i).and_then(|(loc, xid)| after_by_loc.get(loc).copied().filter(|&j| after[j].xmin == *xid));
        if let Some(j) = moved {
            let kj = key_of(&after[j].values, key);
            if kj != k && !before_keys.contains_key(&kj) && !after_by_key.contains_key(&k) {
                after_claimed[j] = true;
                cases.push(Case { damage: Damage::KeyChanged, before: Some(i), after: Some(j) });
                continue;
            }
        }
        match after_by_key.get(&k) {
            Some(&j) => {
                after_claimed[j] = true;
                if after[j].values == row.values {
                    out.untouched += 1;
                } else {
                    cases.push(Case { damage: Damage::Updated, before: Some(i), after: Some(j) });
                }
            }
            None => cases.push(Case { damage: Damage::Deleted, before: Some(i), after: None }),
        }
    }
    for (j, claimed) in after_claimed.iter().enumerate() {
        if !claimed {
            cases.push(Case { damage: Damage::Inserted, before: None, after: Some(j) });
        }
    }
    // `--where` picks damaged rows by their version before the accident
    // (by the version after it for rows the accident inserted).
    for c in cases {
        let selected = match c.before {
            Some(i) => before[i].selected,
            None => c.after.is_some_and(|j| after[j].selected),
        };
        if selected {
            out.cases.push(c);
        } else {
            out.filtered += 1;
        }
    }
    out
}

/// Why a damaged row is not simply repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictKind {
    /// The accident deleted it; a row with its key exists now.
    ReinsertedSince,
    /// The accident changed or inserted it; it changed again since.
    ChangedSince,
    /// The accident changed it; it was deleted since.
    DeletedSince,
    /// The accident moved it to another key; its old key is taken now.
    KeyTaken,
}

/// What to do with one damaged row, given the live table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Untouched since the accident: put back as it was before.
    Repair,
    /// Already as it was before (someone repaired it): nothing to do.
    AlreadyAsBefore,
    Conflict(ConflictKind),
}

/// The live rows a case involves: at its key before, and at its key after
/// when the accident moved it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now<'a> {
    pub at_before_key: Option<&'a Vec<Option<String>>>,
    pub at_after_key: Option<&'a Vec<Option<String>>>,
}

impl<'a> Now<'a> {
    pub(crate) fn of(case: &Case, before: &[Row], after: &[Row], key: &[usize], live: &'a HashMap<Key, Vec<Option<String>>>) -> Now<'a> {
        let ka = case.before.map(|i| key_of(&before[i].values, key));
        let kb = case.after.map(|j| key_of(&after[j].values, key));
        Now { at_before_key: ka.as_ref().and_then(|k| live.get(k)), at_after_key: kb.as_ref().and_then(|k| live.get(k)) }
    }

    /// The live version shown beside a conflict.
    pub(crate) fn shown(&self, case: &Case, kind: ConflictKind) -> Option<&'a Vec<Option<String>>> {
        match (case.damage, kind) {
            (Damage::Inserted | Damage::KeyChanged, ConflictKind::ChangedSince) => self.at_after_key,
            _ => self.at_before_key.or(self.at_after_key),
        }
    }
}

pub(crate) fn verdict(case: &Case, before: &[Row], after: &[Row], now: &Now<'_>) -> Verdict {
    let a = case.before.map(|i| &before[i].values);
    let b = case.after.map(|j| &after[j].values);
    match case.damage {
        Damage::Deleted => match now.at_before_key {
            None => Verdict::Repair,
            Some(n) if Some(n) == a => Verdict::AlreadyAsBefore,
            Some(_) => Verdict::Conflict(ConflictKind::ReinsertedSince),
        },
        Damage::Inserted => match now.at_after_key {
            Some(n) if Some(n) == b => Verdict::Repair,
            None => Verdict::AlreadyAsBefore,
            Some(_) => Verdict::Conflict(ConflictKind::ChangedSince),
        },
        Damage::Updated => match now.at_before_key {
            Some(n) if Some(n) == b => Verdict::Repair,
            Some(n) if Some(n) == a => Verdict::AlreadyAsBefore,
            Some(_) => Verdict::Conflict(ConflictKind::ChangedSince),
            None => Verdict::Conflict(ConflictKind::DeletedSince),
        },
        Damage::KeyChanged => match (now.at_before_key, now.at_after_key) {
            (None, Some(n)) if Some(n) == b => Verdict::Repair,
            (Some(n), None) if Some(n) == a => Verdict::AlreadyAsBefore,
            (Some(_), _) => Verdict::Conflict(ConflictKind::KeyTaken),
            (None, Some(_)) => Verdict::Conflict(ConflictKind::ChangedSince),
            (None, None) => Verdict::Conflict(ConflictKind::DeletedSince),
        },
    }
}

/// Indexes of `rows` ordered so that every row comes after the rows of the
/// same set it references through a self-referencing foreign key (a tree:
/// parents before children). `self_refs` pairs the referencing columns
/// with the referenced ones. Rows in a reference cycle keep their order.
pub(crate) fn tree_order(rows: &[&[Option<String>]], self_refs: &[(Vec<usize>, Vec<usize>)]) -> Vec<usize> {
    if self_refs.is_empty() {
        return (0..rows.len()).collect();
    }
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    for (fk, referenced) in self_refs {
        let by_referenced: HashMap<Vec<&Option<String>>, usize> = rows.iter().enumerate().map(|(i, r)| (referenced.iter().map(|&c| &r[c]).collect(), i)).collect();
        for (i, r) in rows.iter().enumerate() {
            let value: Vec<&Option<String>> = fk.iter().map(|&c| &r[c]).collect();
            if value.iter().any(|v| v.is_none()) {
                continue;
            }
            if let Some(&p) = by_referenced.get(&value)
                && p != i
            {
                parents[i].push(p);
            }
        }
    }
    // Depth-first, iterative: a deep tree must not overflow the stack.
    let mut state = vec![0u8; rows.len()]; // 0 new, 1 on the path, 2 placed
    let mut order = Vec::with_capacity(rows.len());
    for start in 0..rows.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some((node, next)) = stack.pop() {
            if let Some(&p) = parents[node].get(next) {
                stack.push((node, next + 1));
                if state[p] == 0 {
                    state[p] = 1;
                    stack.push((p, 0));
                }
            } else {
                state[node] = 2;
                order.push(node);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u32, v: &str) -> Row {
        Row { values: vec![Some(id.to_string()), Some(v.to_owned())], loc: Some(TupleLoc { relfilenode: 1, block: 0, offset: id as u16 }), xmin: 1, selected: true }
    }

    #[test]
    fn a_row_the_accident_did_not_touch_is_not_a_case() {
        let before = vec![row(1, "a"), row(2, "b"), row(3, "c")];
        let after = vec![row(1, "a"), row(2, "B"), row(4, "d")];
        let d = damage(&before, &after, &[0], &HashMap::new());
        assert_eq!(d.untouched, 1);
        assert_eq!(
            d.cases,
            vec![
                Case { damage: Damage::Updated, before: Some(1), after: Some(1) },
                Case { damage: Damage::Deleted, before: Some(2), after: None },
                Case { damage: Damage::Inserted, before: None, after: Some(2) },
            ]
        );
    }

    #[test]
    fn key_changing_update_is_one_case_when_the_wal_links_the_versions() {
        let before = vec![row(1, "a")];
        let mut moved = row(1001, "a");
        moved.loc = Some(TupleLoc { relfilenode: 1, block: 3, offset: 7 });
        moved.xmin = 900;
        let after = vec![moved];
        let mut succ = HashMap::new();
        succ.insert(0, (TupleLoc { relfilenode: 1, block: 3, offset: 7 }, 900));
        let d = damage(&before, &after, &[0], &succ);
        assert_eq!(d.cases, vec![Case { damage: Damage::KeyChanged, before: Some(0), after: Some(0) }]);
        // A slot reused by another transaction is not the row's successor.
        succ.insert(0, (TupleLoc { relfilenode: 1, block: 3, offset: 7 }, 901));
        let d = damage(&before, &after, &[0], &succ);
        assert_eq!(d.cases.len(), 2, "{:?}", d.cases);
    }

    #[test]
    fn where_selects_by_the_version_before_the_accident() {
        let mut before = vec![row(1, "active"), row(2, "active")];
        before[1].selected = false;
        let mut after = vec![row(1, "archived"), row(2, "archived"), row(3, "new")];
        after[0].selected = false;
        after[1].selected = false;
        let d = damage(&before, &after, &[0], &HashMap::new());
        assert_eq!(d.filtered, 1);
        assert_eq!(d.cases.len(), 2, "row 1 by its version before, row 3 by its version after: {:?}", d.cases);
    }

    #[test]
    fn later_work_decides_between_repair_and_conflict() {
        let before = vec![row(1, "a"), row(2, "b"), row(3, "c")];
        let after = vec![row(2, "B"), row(3, "C"), row(9, "x")];
        let d = damage(&before, &after, &[0], &HashMap::new());
        let mut live: HashMap<Key, Vec<Option<String>>> = HashMap::new();
        live.insert(vec![Some("2".into())], row(2, "B").values); // untouched since
        live.insert(vec![Some("3".into())], row(3, "later").values); // changed since
        live.insert(vec![Some("1".into())], row(1, "reused").values); // key reused since
        let verdicts: Vec<Verdict> = d.cases.iter().map(|c| verdict(c, &before, &after, &Now::of(c, &before, &after, &[0], &live))).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Conflict(ConflictKind::ReinsertedSince),
                Verdict::Repair,
                Verdict::Conflict(ConflictKind::ChangedSince),
                Verdict::AlreadyAsBefore, // row 9, inserted by the accident, deleted since
            ]
        );
    }

    #[test]
    fn self_references_are_ordered_parents_first_not_by_key_text() {
        // id, parent: 10 → 2 → 1, and 100 → 10; keys sorted as text would
        // put "10" and "100" before "2".
        let rows: Vec<Vec<Option<String>>> = [("10", Some("2")), ("100", Some("10")), ("2", Some("1")), ("1", None)]
            .iter()
            .map(|(id, p)| vec![Some((*id).to_owned()), p.map(str::to_owned)])
            .collect();
        let refs: Vec<&[Option<String>]> = rows.iter().map(Vec::as_slice).collect();
        let order = tree_order(&refs, &[(vec![1], vec![0])]);
        let ids: Vec<&str> = order.iter().map(|&i| rows[i][0].as_deref().unwrap_or("")).collect();
        assert_eq!(ids, ["1", "2", "10", "100"]);
    }
}
