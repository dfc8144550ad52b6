//! Where the head's sealed chunks keep their bytes: large shared blocks, not one small
//! allocation each.
//!
//! A province day seals about half a million chunks of 100–300 bytes. Allocated one by one
//! they shared the allocator's small pages with what outlives a flush — the series' own
//! structs, postings containers, label pairs — and when the flush freed the chunks, every
//! page that still held one such long-lived object stayed resident: 22 MiB of live heap
//! kept 65–70 MiB of memory after a flush (heaptrack and mimalloc's page counts,
//! BENCHMARKS.md "Memory at flush"). Here chunks are copied into blocks of [`BLOCK`] bytes;
//! a chunk is a [`Bytes`] view that keeps its block alive, and a block goes back to the
//! allocator whole when its last chunk is dropped — after the flush that wrote them and the
//! queries that read them. [`ChunkArena::retire`] lets go of the blocks being filled, so
//! that a flushed head keeps none.
//!
//! Writers of different series seal into one of [`SLOTS`] blocks chosen by their series
//! reference, each behind its own lock held for one copy.

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

/// Bytes per block: above the allocator's largest size class (512 KiB), so each block is
/// an allocation of its own pages that is returned whole.
pub const BLOCK: usize = 1 << 20;

/// Blocks filled at once.
const SLOTS: usize = 8;

/// The head's sealed-chunk blocks.
#[derive(Debug)]
pub struct ChunkArena {
    slots: Box<[Mutex<BytesMut>]>,
}

impl Default for ChunkArena {
    fn default() -> Self {
        ChunkArena {
            slots: (0..SLOTS).map(|_| Mutex::new(BytesMut::new())).collect(),
        }
    }
}

impl ChunkArena {
    /// The `len` bytes `write` appends, in a block; `key` (a series reference) picks the
    /// block, so that writers of different series rarely wait for each other.
    pub fn store(&self, key: u32, len: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        let slot = self
            .slots
            .get(key as usize % SLOTS)
            .filter(|_| len <= BLOCK / 8);
        let Some(slot) = slot else {
            // Not a head chunk's size: its own allocation wastes no block.
            let mut own = BytesMut::with_capacity(len);
            write(&mut own);
            return own.freeze();
        };
        let mut block = slot.lock();
        if block.capacity() - block.len() < len {
            // The rest of a full block is never touched, so it costs no memory; the block
            // is freed with its last chunk.
            *block = BytesMut::with_capacity(BLOCK);
        }
        write(&mut block);
        block.split().freeze()
    }

    /// Lets go of the blocks being filled (after a flush took the head's chunks): each is
    /// freed when its last chunk is, and the next seal starts a new one.
    pub fn retire(&self) {
        for slot in self.slots.iter() {
            *slot.lock() = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_share_blocks_and_read_back_what_was_stored() {
        let arena = ChunkArena::default();
        let stored: Vec<(Vec<u8>, Bytes)> = (0..5_000u32)
            .map(|i| {
                let chunk: Vec<u8> = (0..(i % 300) as u8).map(|b| b ^ i as u8).collect();
                let bytes = arena.store(i, chunk.len(), |b| b.extend_from_slice(&chunk));
                (chunk, bytes)
            })
            .collect();
        for (chunk, bytes) in &stored {
            assert_eq!(&bytes[..], &chunk[..]);
        }
        // Chunks of one slot lie one after another in one block.
        let (a, b) = (&stored[8].1, &stored[16].1);
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
    }

    #[test]
    fn a_full_block_is_replaced_and_its_chunks_stay_readable() {
        let arena = ChunkArena::default();
        let store =
            |key, chunk: &[u8]| arena.store(key, chunk.len(), |b| b.extend_from_slice(chunk));
        let chunk = vec![7u8; 1000];
        let first = store(0, &chunk);
        let mut last = first.clone();
        for _ in 0..(2 * BLOCK / chunk.len()) {
            last = store(0, &chunk);
        }
        arena.retire();
        let after = store(0, &[1, 2, 3]);
        assert_eq!(&first[..], &chunk[..]);
        assert_eq!(&last[..], &chunk[..]);
        assert_eq!(&after[..], &[1, 2, 3]);
        let big = vec![9u8; BLOCK];
        assert_eq!(&store(1, &big)[..], &big[..]);
    }
}
