//! Scratch memory for the write paths: the buffers one request fills (a decompressed body,
//! the arrays of a message read in place) go back to a small shared pool for a later
//! request, so that a request costs no fresh pages and no growth — both showed in profiles
//! of the write path. The pool holds at most two sets per core, however many threads serve
//! writes (per-thread buffers would grow with the blocking pool: 13 threads with four
//! remote-write senders).

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
}
