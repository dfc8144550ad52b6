//! Interned label pairs: every distinct (name, value) pair among the head's series is stored
//! once — its value's bytes in an arena of pages, its name once per name — together with
//! the postings of the series that carry it. A series keeps only the ids of its pairs
//! (four bytes a label), so a label set costs its distinct strings once, however many series
//! share them, and the index needs no second copy to answer matchers. A pair no series
//! carries any more (its series left the head) is forgotten: its id is reused, and its
//! value's bytes are reclaimed when the arena is rewritten, once half of it is dead.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use roaring::RoaringBitmap;

/// A label pair's id.
pub type PairId = u32;

/// A label name's id (names are few and are never forgotten).
type NameId = u32;

/// Bytes of the first arena page; each next page doubles, up to [`MAX_PAGE`], so a small
/// head stays small. Longer values get a page of their own.
const FIRST_PAGE: usize = 1 << 10;
const MAX_PAGE: usize = 64 << 10;

/// What a shared pair's bitmap costs besides its ids: the box, the bitmap, a container.
const BITMAP_OVERHEAD: usize = 96;

/// What one more id costs in a bitmap: two bytes in an array container; ids dense enough
/// for bitmap containers cost less.
const BITMAP_BYTES_PER_ID: usize = 2;

/// Where a value's bytes lie in the arena.
#[derive(Debug, Clone, Copy)]
struct Span {
    page: u32,
    start: u32,
    len: u32,
}

/// Append-only pages of UTF-8 text.
#[derive(Debug, Default)]
struct Arena {
    pages: Vec<Vec<u8>>,
    /// Bytes of the pages allocated.
    page_bytes: usize,
}

impl Arena {
    fn push(&mut self, text: &str) -> Span {
        let last = self
            .pages
            .last_mut()
            .filter(|p| p.capacity() - p.len() >= text.len());
        let bytes = match last {
            Some(page) => page,
            None => {
                let size = self
                    .pages
                    .last()
                    .map_or(FIRST_PAGE, |p| (p.capacity() * 2).min(MAX_PAGE));
                let page = Vec::with_capacity(size.max(text.len()));
                self.page_bytes += page.capacity();
                self.pages.push(page);
                self.pages
                    .last_mut()
                    .unwrap_or_else(|| unreachable!("just pushed"))
            }
        };
        let start = bytes.len();
        bytes.extend_from_slice(text.as_bytes());
        Span {
            page: (self.pages.len() - 1) as u32,
            start: start as u32,
            len: text.len() as u32,
        }
    }

    fn bytes(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.pages
            .get(span.page as usize)
            .and_then(|p| p.get(start..start + span.len as usize))
            .unwrap_or_default()
    }

    fn text(&self, span: Span) -> &str {
        // Only `&str`s are pushed and spans never split them, so this always succeeds.
        std::str::from_utf8(self.bytes(span)).unwrap_or_default()
    }

    fn heap_bytes(&self) -> usize {
        self.page_bytes + self.pages.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

/// Arena bytes below which dead values are not worth a rewrite.
const MIN_ARENA_REWRITE: usize = 64 << 10;

/// The series carrying one pair: most pairs of a high-cardinality label (a camera id) have
/// exactly one, and a bitmap for it would cost ten times the id.
#[derive(Debug)]
pub enum Postings {
    /// Exactly one series.
    One(u32),
    /// Two or more.
    Many(Box<RoaringBitmap>),
}

impl Postings {
    /// Adds `id`; returns the bytes it grew by (estimated, see [`BITMAP_BYTES_PER_ID`]).
    fn insert(&mut self, id: u32) -> usize {
        match self {
            Postings::One(one) if *one != id => {
                *self = Postings::Many(Box::new(RoaringBitmap::from_iter([*one, id])));
                BITMAP_OVERHEAD + 2 * BITMAP_BYTES_PER_ID
            }
            Postings::One(_) => 0,
            Postings::Many(bitmap) => usize::from(bitmap.insert(id)) * BITMAP_BYTES_PER_ID,
        }
    }

    /// Removes `id`; returns whether no series is left, and the bytes it shrank by.
    fn remove(&mut self, id: u32) -> (bool, usize) {
        match self {
            Postings::One(one) => (*one == id, 0),
            Postings::Many(bitmap) => {
                let removed = usize::from(bitmap.remove(id)) * BITMAP_BYTES_PER_ID;
                match (bitmap.len(), bitmap.min()) {
                    (0, _) => (true, removed),
                    // One left: its id alone, as a pair with one series always is.
                    (1, Some(last)) => {
                        *self = Postings::One(last);
                        (false, BITMAP_OVERHEAD + BITMAP_BYTES_PER_ID)
                    }
                    _ => (false, removed),
                }
            }
        }
    }

    /// Whether any of `series` carries the pair.
    pub fn intersects(&self, series: &RoaringBitmap) -> bool {
        match self {
            Postings::One(id) => series.contains(*id),
            Postings::Many(bitmap) => !bitmap.is_disjoint(series),
        }
    }

    /// `into |= self`.
    pub fn union_into(&self, into: &mut RoaringBitmap) {
        match self {
            Postings::One(id) => {
                into.insert(*id);
            }
            Postings::Many(bitmap) => *into |= bitmap.as_ref(),
        }
    }

    /// `into &= self`.
    pub fn intersect(&self, into: &mut RoaringBitmap) {
        match self {
            Postings::One(id) => {
                let kept = into.contains(*id);
                into.clear();
                if kept {
                    into.insert(*id);
                }
            }
            Postings::Many(bitmap) => *into &= bitmap.as_ref(),
        }
    }
}

#[derive(Debug)]
struct Pair {
    /// [`DEAD`] once no series carries it (its id waits in `free`).
    name: NameId,
    value: Span,
    postings: Postings,
    /// Its place in its name's list of pairs (so that forgetting it costs no search).
    place: u32,
}

/// The name of a forgotten pair.
const DEAD: NameId = NameId::MAX;

#[derive(Debug)]
struct Name {
    text: Box<str>,
    pairs: Vec<PairId>,
}

/// The interned pairs and their postings.
#[derive(Debug, Default)]
pub struct Pairs {
    names: Vec<Name>,
    name_ids: std::collections::HashMap<Box<str>, NameId>,
    pairs: Vec<Pair>,
    lookup: HashTable<PairId>,
    arena: Arena,
    /// Seeded per process: label values come from the network, and a fixed seed would let
    /// a sender craft values that collide.
    hasher: foldhash::fast::RandomState,
    /// Bytes of the shared pairs' bitmaps (estimated as they change).
    bitmap_bytes: usize,
    /// Bytes of the names' texts and lists.
    name_bytes: usize,
    /// Ids of forgotten pairs, for reuse.
    free: Vec<PairId>,
    /// Arena bytes of forgotten pairs' values.
    dead_bytes: usize,
}

impl Pairs {
    fn hash(&self, name: NameId, value: &[u8]) -> u64 {
        self.hasher.hash_one((name, value))
    }

    fn pair(&self, id: PairId) -> Option<&Pair> {
        self.pairs.get(id as usize).filter(|p| p.name != DEAD)
    }

    /// The id of pair (`name`, `value`) if some series carries it.
    pub fn find(&self, name: &str, value: &str) -> Option<PairId> {
        let name = *self.name_ids.get(name)?;
        let hash = self.hash(name, value.as_bytes());
        self.lookup
            .find(hash, |&id| {
                self.pair(id).is_some_and(|p| {
                    p.name == name && self.arena.bytes(p.value) == value.as_bytes()
                })
            })
            .copied()
    }

    /// Adds series `series` to pair (`name`, `value`), interning the pair if new.
    pub fn add(&mut self, name: &str, value: &str, series: u32) -> PairId {
        if let Some(id) = self.find(name, value) {
            if let Some(p) = self.pairs.get_mut(id as usize) {
                self.bitmap_bytes += p.postings.insert(series);
            }
            return id;
        }
        let name_id = match self.name_ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as NameId;
                self.name_bytes += 2 * name.len() + 64;
                self.names.push(Name {
                    text: name.into(),
                    pairs: Vec::new(),
                });
                self.name_ids.insert(name.into(), id);
                id
            }
        };
        let span = self.arena.push(value);
        let mut place = 0;
        let id = self.free.pop().unwrap_or(self.pairs.len() as PairId);
        if let Some(name) = self.names.get_mut(name_id as usize) {
            let capacity = name.pairs.capacity();
            place = name.pairs.len() as u32;
            name.pairs.push(id);
            self.name_bytes += (name.pairs.capacity() - capacity) * std::mem::size_of::<PairId>();
        }
        let pair = Pair {
            name: name_id,
            value: span,
            postings: Postings::One(series),
            place,
        };
        match self.pairs.get_mut(id as usize) {
            Some(slot) => *slot = pair,
            None => self.pairs.push(pair),
        }
        let hash = self.hash(name_id, value.as_bytes());
        let Pairs {
            lookup,
            pairs,
            arena,
            hasher,
            ..
        } = self;
        lookup.insert_unique(hash, id, |&id| match pairs.get(id as usize) {
            Some(p) => hasher.hash_one((p.name, arena.bytes(p.value))),
            None => unreachable!("the lookup holds only ids of pairs"),
        });
        id
    }

    /// Removes series `series` from pair `id`, forgetting the pair when no series is left.
    pub fn remove(&mut self, id: PairId, series: u32) {
        let Some(pair) = self.pairs.get_mut(id as usize).filter(|p| p.name != DEAD) else {
            return;
        };
        let (empty, shrunk) = pair.postings.remove(series);
        self.bitmap_bytes = self.bitmap_bytes.saturating_sub(shrunk);
        if !empty {
            return;
        }
        let (name_id, value, place) = (pair.name, pair.value, pair.place);
        pair.name = DEAD;
        pair.postings = Postings::One(0);
        let hash = self.hash(name_id, self.arena.bytes(value));
        if let Ok(entry) = self.lookup.find_entry(hash, |&p| p == id) {
            entry.remove();
        }
        if let Some(name) = self.names.get_mut(name_id as usize) {
            name.pairs.swap_remove(place as usize);
            // The pair that took its place learns where it is now.
            if let Some(&moved) = name.pairs.get(place as usize)
                && let Some(p) = self.pairs.get_mut(moved as usize)
            {
                p.place = place;
            }
        }
        self.free.push(id);
        self.dead_bytes += value.len as usize;
        if self.dead_bytes > MIN_ARENA_REWRITE && self.dead_bytes > self.arena.page_bytes / 2 {
            self.rewrite_arena();
        }
    }

    /// Copies the values of the pairs still carried into a fresh arena, dropping the dead
    /// ones' bytes.
    fn rewrite_arena(&mut self) {
        let mut arena = Arena::default();
        for p in self.pairs.iter_mut().filter(|p| p.name != DEAD) {
            p.value = arena.push(self.arena.text(p.value));
        }
        self.arena = arena;
        self.dead_bytes = 0;
    }

    /// The name and value of pair `id` (empty strings for an id not in use).
    pub fn get(&self, id: PairId) -> (&str, &str) {
        match self.pair(id) {
            Some(p) => (
                self.names.get(p.name as usize).map_or("", |n| &n.text),
                self.arena.text(p.value),
            ),
            None => ("", ""),
        }
    }

    /// Whether pair `id` is (`name`, `value`).
    pub fn is(&self, id: PairId, name: &[u8], value: &[u8]) -> bool {
        self.pair(id).is_some_and(|p| {
            self.arena.bytes(p.value) == value
                && self
                    .names
                    .get(p.name as usize)
                    .is_some_and(|n| n.text.as_bytes() == name)
        })
    }

    /// The postings of pair (`name`, `value`).
    pub fn postings(&self, name: &str, value: &str) -> Option<&Postings> {
        self.find(name, value)
            .and_then(|id| self.pair(id))
            .map(|p| &p.postings)
    }

    /// Every value of label `name` with its postings.
    pub fn values(&self, name: &str) -> impl Iterator<Item = (&str, &Postings)> {
        let list = self
            .name_ids
            .get(name)
            .and_then(|&id| self.names.get(id as usize))
            .map_or(&[][..], |n| &n.pairs[..]);
        list.iter().filter_map(|&id| {
            let p = self.pair(id)?;
            Some((self.arena.text(p.value), &p.postings))
        })
    }

    /// Every label name some series carries.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .filter(|n| !n.pairs.is_empty())
            .map(|n| &*n.text)
    }

    /// Heap bytes held: tables at their capacity, arena pages, names, bitmaps (estimated);
    /// constant time, so the head can account every series it creates.
    pub fn heap_bytes(&self) -> usize {
        self.pairs.capacity() * std::mem::size_of::<Pair>()
            + self.lookup.capacity() * (std::mem::size_of::<PairId>() + 1)
            + self.name_bytes
            + self.arena.heap_bytes()
            + self.bitmap_bytes
    }
}
