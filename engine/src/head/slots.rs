//! The registry's table from reference to series: each reference's struct while its series
//! is in the head, `None` once it left (or is gone).
//!
//! References are dense and handed out in creation order, so a plain array would do — but
//! under churn most references belong to series that left the head long ago, and an array
//! would keep 8 bytes for every reference ever handed out. The table is an array of pages
//! instead, and a page none of whose references is in the head is freed (and allocated
//! again if one comes back): series created together (a generation of cameras, a store's
//! segments registered at open) leave together, so what the table costs follows the series
//! in the head.

use std::sync::Arc;

use super::series::Series;

/// References per page: 2 KiB of slots (small enough that a small store does not pay for
/// many references it has not handed out, and that a page empties often under churn).
const PAGE: usize = 256;

/// One page's slots and how many of them hold a series.
#[derive(Debug)]
struct Page {
    slots: Box<[Option<Arc<Series>>]>,
    filled: usize,
}

impl Page {
    fn new() -> Page {
        Page {
            slots: (0..PAGE).map(|_| None).collect(),
            filled: 0,
        }
    }
}

/// Reference → series, in pages (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Slots {
    pages: Vec<Option<Page>>,
    /// References handed out.
    len: usize,
    /// Pages allocated.
    allocated: usize,
}

impl Slots {
    /// References handed out (in the head or not).
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The series of reference `id`, if it is in the head.
    pub(super) fn get(&self, id: usize) -> Option<&Arc<Series>> {
        self.pages
            .get(id / PAGE)?
            .as_ref()?
            .slots
            .get(id % PAGE)?
            .as_ref()
    }

    /// Hands out the next reference, holding `series` (`None`: a series out of the head).
    pub(super) fn push(&mut self, series: Option<Arc<Series>>) {
        let id = self.len;
        if id.is_multiple_of(PAGE) {
            self.pages.push(None);
        }
        self.len += 1;
        self.set(id, series);
    }

    /// Puts `series` into the slot of reference `id` (below [`Slots::len`]), or empties it
    /// (`None`), freeing its page when no slot of it holds a series any more; returns what
    /// the slot held.
    pub(super) fn set(&mut self, id: usize, series: Option<Arc<Series>>) -> Option<Arc<Series>> {
        let entry = self.pages.get_mut(id / PAGE)?;
        if entry.is_none() {
            series.as_ref()?;
            *entry = Some(Page::new());
            self.allocated += 1;
        }
        let page = entry.as_mut()?;
        let slot = page.slots.get_mut(id % PAGE)?;
        let old = std::mem::replace(slot, series);
        match (old.is_some(), slot.is_some()) {
            (false, true) => page.filled += 1,
            (true, false) => page.filled -= 1,
            _ => {}
        }
        if page.filled == 0 {
            *entry = None;
            self.allocated -= 1;
        }
        old
    }

    /// Every series in the head, in reference order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Series>> {
        self.pages
            .iter()
            .flatten()
            .flat_map(|page| page.slots.iter().flatten())
    }

    /// Heap bytes: the page table and the pages allocated.
    pub(super) fn heap_bytes(&self) -> usize {
        self.pages.capacity() * std::mem::size_of::<Option<Page>>()
            + self.allocated * PAGE * std::mem::size_of::<Option<Arc<Series>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(id: u32) -> Arc<Series> {
        let usages = crate::head::Usages::default();
        let namespace = crate::model::Namespace::new("t").expect("namespace");
        Arc::new(Series::detached(id, usages.of(&namespace)))
    }

    #[test]
    fn pages_are_freed_when_their_series_leave_and_come_back_with_them() {
        let mut slots = Slots::default();
        for id in 0..3 * PAGE as u32 {
            slots.push(Some(series(id)));
        }
        // References registered out of the head take no page.
        for _ in 0..PAGE {
            slots.push(None);
        }
        assert_eq!((slots.len(), slots.allocated), (4 * PAGE, 3));
        let full = slots.heap_bytes();
        // The first page's series leave, all but one.
        for id in 0..PAGE - 1 {
            assert!(slots.set(id, None).is_some());
        }
        assert_eq!(slots.allocated, 3);
        assert!(slots.set(PAGE - 1, None).is_some());
        assert_eq!(slots.allocated, 2);
        assert!(slots.heap_bytes() < full);
        assert!(slots.get(0).is_none());
        assert_eq!(slots.get(PAGE).map(|s| s.id), Some(PAGE as u32));
        // One comes back: its page again.
        slots.set(5, Some(series(5)));
        assert_eq!((slots.allocated, slots.get(5).map(|s| s.id)), (3, Some(5)));
        assert_eq!(slots.iter().count(), 2 * PAGE + 1);
        assert!(slots.iter().map(|s| s.id).is_sorted());
        // Beyond the references handed out: nothing, and nothing is stored.
        assert!(slots.set(4 * PAGE, Some(series(0))).is_none());
        assert!(slots.get(4 * PAGE).is_none());
        assert_eq!(slots.len(), 4 * PAGE);
    }
}
