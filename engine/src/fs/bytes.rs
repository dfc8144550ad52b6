//! A safe, cheap-to-clone, read-only byte handle over an immutable file: a memory map, or a
//! plain buffer read with `read(2)` (the fallback, and the baseline benchmarks compare with).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::mmap::ReadOnlyMap;

/// Read-only bytes of an immutable file.
#[derive(Clone)]
pub struct Bytes(Arc<Backing>);

enum Backing {
    Mapped(ReadOnlyMap),
    Owned(Vec<u8>),
}

impl Bytes {
    pub(crate) fn mapped(map: ReadOnlyMap) -> Self {
        Bytes(Arc::new(Backing::Mapped(map)))
    }

    /// Bytes held in memory.
    pub fn owned(data: Vec<u8>) -> Self {
        Bytes(Arc::new(Backing::Owned(data)))
    }

    /// Drops the process's resident copy of `[start, end)` of a map (the page cache keeps
    /// it, and a later read maps it again): for regions read once, as a segment's tables are
    /// at open, that would otherwise stay in the process's RSS as long as the file is open.
    pub fn release(&self, start: usize, end: usize) {
        if let Backing::Mapped(map) = &*self.0 {
            map.release(start, end);
        }
    }

    /// True when the bytes come from a memory map.
    pub fn is_mapped(&self) -> bool {
        matches!(*self.0, Backing::Mapped(_))
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &*self.0 {
            Backing::Mapped(map) => map.as_slice(),
            Backing::Owned(data) => data,
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bytes({} bytes, mapped: {})",
            self.len(),
            self.is_mapped()
        )
    }
}
