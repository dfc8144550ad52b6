//! A series' label pairs as the ids the index interned them under, in label order: inline
//! for the usual few labels, so that finding a series by its labels reads them from the
//! series' own struct instead of following a pointer to a second allocation (one cache miss
//! less per series written by labels, and one allocation less per series).

use std::ops::Deref;

use super::PairId;

/// Ids kept inline: as many as fit beside the length in the space of the boxed form.
const INLINE: usize = 7;

/// A series' pair ids (see the module's doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairIds {
    /// Up to [`INLINE`] ids: the first `len`.
    Inline { len: u8, ids: [PairId; INLINE] },
    /// More.
    Heap(Box<[PairId]>),
}

impl PairIds {
    /// Heap bytes beyond the value itself.
    pub fn heap_bytes(&self) -> usize {
        match self {
            PairIds::Inline { .. } => 0,
            PairIds::Heap(ids) => std::mem::size_of_val(&ids[..]),
        }
    }
}

impl Default for PairIds {
    fn default() -> Self {
        PairIds::Inline {
            len: 0,
            ids: [0; INLINE],
        }
    }
}

impl Deref for PairIds {
    type Target = [PairId];

    fn deref(&self) -> &[PairId] {
        match self {
            PairIds::Inline { len, ids } => ids.get(..*len as usize).unwrap_or(ids),
            PairIds::Heap(ids) => ids,
        }
    }
}

impl FromIterator<PairId> for PairIds {
    fn from_iter<I: IntoIterator<Item = PairId>>(iter: I) -> Self {
        let all: Vec<PairId> = iter.into_iter().collect();
        if all.len() > INLINE {
            return PairIds::Heap(all.into_boxed_slice());
        }
        let mut ids = [0; INLINE];
        for (slot, &id) in ids.iter_mut().zip(&all) {
            *slot = id;
        }
        PairIds::Inline {
            len: all.len() as u8,
            ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_in_order_inline_and_on_the_heap() {
        assert_eq!(std::mem::size_of::<PairIds>(), 32);
        for n in 0..20u32 {
            let ids: PairIds = (0..n).map(|i| i * 3 + 1).collect();
            assert_eq!(&ids[..], &(0..n).map(|i| i * 3 + 1).collect::<Vec<_>>()[..]);
            assert_eq!(ids.heap_bytes() > 0, n as usize > INLINE, "{n}");
        }
        assert!(PairIds::default().is_empty());
    }
}
