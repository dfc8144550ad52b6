//! Scratch memory for the write paths: the arrays one request fills (the labels and samples
//! of a message read in place, the engine's batch and its WAL frames) go back to a small
//! pool for a later request, so that a request costs no fresh pages and no growth. Freed,
//! such arrays (hundreds of KiB for a batch of 10,000 series) went back to the allocator,
//! which returned their pages to the OS and took page faults to have them again: a
//! twentieth of the server's time in a remote-write profile (BENCHMARKS.md, issue 11).
//!
//! The pool holds at most two sets per core, however many threads serve writes (per-thread
//! buffers would grow with the blocking pool: 13 threads with four remote-write senders).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A pool of `T`s: [`Pool::with`] lends one (a fresh one when the pool is empty) and takes
/// it back unless it grew past what is worth keeping.
#[derive(Debug)]
pub struct Pool<T> {
    free: Mutex<Vec<T>>,
    keep: fn(&T) -> bool,
}

impl<T: Default> Pool<T> {
    /// An empty pool that keeps what `keep` accepts (so that one huge request does not pin
    /// its memory).
    pub const fn new(keep: fn(&T) -> bool) -> Self {
        Pool {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// Runs `f` with a `T` from the pool.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut scratch = self.free().pop().unwrap_or_default();
        let answer = f(&mut scratch);
        if (self.keep)(&scratch) {
            let mut free = self.free();
            if free.len() < max_kept() {
                free.push(scratch);
            }
        }
        answer
    }

    /// The free list (a panic elsewhere while it was held leaves it usable: it is only
    /// ever pushed to and popped from).
    fn free(&self) -> MutexGuard<'_, Vec<T>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many sets a pool keeps: two per core.
fn max_kept() -> usize {
    static KEPT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *KEPT.get_or_init(|| 2 * std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// `v` emptied, as a vector of `U` with its allocation: how an array of borrowed items
/// (`RawLabel<'a>`, a batch of `Cow<'a, [Sample]>`) outlives the request it borrowed from
/// and serves the next one. `T` and `U` are meant to be one type under two lifetimes; the
/// standard library then collects in place, which `recycled_vectors_keep_their_memory`
/// checks on this toolchain (for other types it would merely allocate anew).
pub fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_lent_comes_back_unless_too_large_and_never_past_the_bound() {
        let pool: Pool<Vec<u8>> = Pool::new(|v| v.capacity() <= 1024);
        pool.with(|v| v.extend_from_slice(&[1, 2, 3]));
        pool.with(|v| assert!(v.capacity() >= 3, "the buffer came back"));
        pool.with(|v| v.reserve(4096));
        assert_eq!(pool.free().len(), 0, "a grown buffer is dropped");
        // Many at once: the pool keeps at most its bound.
        fn nest(pool: &Pool<Vec<u8>>, depth: usize) {
            if depth > 0 {
                pool.with(|_| nest(pool, depth - 1));
            }
        }
        nest(&pool, 3 * max_kept());
        assert_eq!(pool.free().len(), max_kept());
    }

    #[test]
    fn recycled_vectors_keep_their_memory() {
        let text = String::from("Châu Đốc");
        let mut borrowed: Vec<&str> = Vec::with_capacity(1000);
        borrowed.extend(text.split(' '));
        let at = borrowed.as_ptr() as usize;
        let kept: Vec<&'static str> = recycle(borrowed);
        drop(text);
        assert!(kept.is_empty());
        assert_eq!(kept.capacity(), 1000, "the allocation is kept");
        assert_eq!(kept.as_ptr() as usize, at, "the same allocation");
    }
}
