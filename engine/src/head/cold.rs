//! What the head keeps of the series that left it: half of each one's hash, in a sorted
//! array, to tell a write of a series never seen from one that may have left.
//!
//! A series out of the head lives on in the segments (its labels in their label indexes,
//! read in place); the head keeps its reference in a bitmap and, here, the high half of its
//! registry hash. A write whose series is not in the head looks its half hash up: absent, the
//! series is new and no segment is searched (every series that left has its half hash here
//! until it comes back or is forgotten: never a false "absent"); present, the segments'
//! label indexes are searched for its labels ([`super::ColdLabels::find_labels`]), which
//! also settles two series sharing a half hash. Four bytes a series that left, against
//! 9–16 for a hash table of (half hash, reference) slots at its load factor: memory follows
//! the active series (BENCHMARKS.md, "Churn").
//!
//! The array changes in batches: the series that leave after a flush are merged in at once
//! ([`ColdKeys::merge`]); a series that comes back or is forgotten only notes its half hash
//! for removal at the next merge (meanwhile the stale entry makes at most a search of the
//! segments that finds nothing). A directory of where each range of half hashes starts
//! makes a look-up one short scan.

/// Entries per directory range, on average (half hashes are uniform).
const PER_RANGE: usize = 32;

/// The half hashes of the series out of the head, as a sorted multiset (two series may
/// share one).
#[derive(Debug, Default)]
pub(super) struct ColdKeys {
    keys: Box<[u32]>,
    /// Where the keys whose top bits are `r` start, for each `r`, then the end.
    starts: Box<[u32]>,
    /// Bits a key is shifted right by to give its range (32: one range).
    shift: u32,
    /// Keys to take out at the next merge, one occurrence each.
    removed: Vec<u32>,
}

impl ColdKeys {
    /// Whether some series out of the head may have half hash `key` (never false for one
    /// that has).
    pub(super) fn contains(&self, key: u32) -> bool {
        let range = key.checked_shr(self.shift).unwrap_or(0) as usize;
        let (Some(&start), Some(&end)) = (self.starts.get(range), self.starts.get(range + 1))
        else {
            return false;
        };
        self.keys
            .get(start as usize..end as usize)
            .is_some_and(|keys| keys.contains(&key))
    }

    /// Notes that a series of half hash `key` is no longer out of the head.
    pub(super) fn remove_later(&mut self, key: u32) {
        self.removed.push(key);
    }

    /// Adds the half hashes of series that left the head, and takes out those noted for
    /// removal.
    pub(super) fn merge(&mut self, mut added: Vec<u32>) {
        if added.is_empty() && self.removed.is_empty() {
            return;
        }
        added.sort_unstable();
        let mut removed = std::mem::take(&mut self.removed);
        removed.sort_unstable();
        let mut removed = removed.into_iter().peekable();
        let (mut old, mut new) = (
            self.keys.iter().copied().peekable(),
            added.into_iter().peekable(),
        );
        let mut keys =
            Vec::with_capacity((self.keys.len() + new.len()).saturating_sub(removed.len()));
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some(&a), Some(&b)) if a <= b => old.next(),
                (Some(_), Some(_)) | (None, Some(_)) => new.next(),
                (Some(_), None) => old.next(),
                (None, None) => break,
            };
            let Some(key) = next else { break };
            // Removals of keys not present are dropped as the merge passes them.
            while removed.next_if(|&r| r < key).is_some() {}
            if removed.next_if_eq(&key).is_none() {
                keys.push(key);
            }
        }
        self.keys = keys.into();
        self.index();
    }

    /// Rebuilds the directory: about [`PER_RANGE`] keys a range, a power of two of ranges.
    fn index(&mut self) {
        let ranges = (self.keys.len() / PER_RANGE).max(1).next_power_of_two();
        self.shift = 32 - ranges.trailing_zeros();
        let mut starts = Vec::with_capacity(ranges + 1);
        let mut at = 0;
        for r in 0..ranges {
            while self
                .keys
                .get(at)
                .is_some_and(|&k| (k.checked_shr(self.shift).unwrap_or(0) as usize) < r)
            {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(self.keys.len() as u32);
        self.starts = starts.into();
    }

    /// Number of entries (series out of the head, and stale entries until the next merge).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        (self.keys.len() + self.starts.len() + self.removed.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multiset semantics against a sorted `Vec` of what should be there.
    #[test]
    fn merges_and_removals_keep_exactly_the_keys_out_of_the_head() {
        use std::collections::BTreeMap;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut keys = ColdKeys::default();
        let mut model: BTreeMap<u32, usize> = BTreeMap::new();
        for round in 0..200 {
            // New keys, some repeating earlier ones or each other (shared half hashes).
            let added: Vec<u32> = (0..(next() % 300))
                .map(|_| match next() % 4 {
                    0 => model.keys().next().copied().unwrap_or(7),
                    1 => (round % 5) as u32,
                    _ => next() as u32,
                })
                .collect();
            for &k in &added {
                *model.entry(k).or_default() += 1;
            }
            keys.merge(added);
            for (&k, &n) in &model {
                assert!(n == 0 || keys.contains(k), "round {round}: {k} lost");
            }
            // Some come back; a removal of a key never added changes nothing.
            let present: Vec<u32> = model.iter().filter(|e| *e.1 > 0).map(|e| *e.0).collect();
            for _ in 0..(next() % 100) {
                if present.is_empty() {
                    break;
                }
                let k = present
                    .get((next() % present.len() as u64) as usize)
                    .copied()
                    .unwrap_or_default();
                if let Some(n) = model.get_mut(&k).filter(|n| **n > 0) {
                    *n -= 1;
                    keys.remove_later(k);
                }
            }
            keys.remove_later(0xdead_beef);
            model.retain(|_, n| *n > 0);
            keys.merge(Vec::new());
            let expected: usize = model.values().sum();
            assert_eq!(keys.len(), expected, "round {round}");
            for &k in model.keys() {
                assert!(keys.contains(k), "round {round}: {k} lost");
            }
            assert!(!keys.contains(0xdead_beef) || model.contains_key(&0xdead_beef));
        }
    }

    #[test]
    fn a_key_not_merged_is_not_found_and_empty_finds_nothing() {
        let mut keys = ColdKeys::default();
        assert!(!keys.contains(0) && !keys.contains(u32::MAX));
        keys.merge(vec![u32::MAX, 0, 1 << 31]);
        assert!(keys.contains(0) && keys.contains(u32::MAX) && keys.contains(1 << 31));
        assert!(!keys.contains(1) && !keys.contains(u32::MAX - 1));
        assert_eq!(keys.heap_bytes(), (3 + 2) * 4);
    }
}
