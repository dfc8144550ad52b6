//! Scratch memory for the write paths: the arrays one request fills (the labels and samples
//! of a message read in place, the engine's batch and its WAL frames) go back to a small
//! pool for a later request, so that a request costs no fresh pages and no growth. Freed,
//! such arrays (hundreds of KiB for a batch of 10,000 series) went back to the allocator,
//! which returned their pages to the OS and took page faults to have them again: 6 % of
//! the server's time in a remote-write profile (BENCHMARKS.md, issue 11).
//!
//! The pool holds at most two sets per core, however many threads serve writes (per-thread
//! buffers would grow with the blocking pool: 13 threads with four remote-write senders),
//! and lets them go once no write has come for a while ([`Pool::release_idle`]), so that
//! an idle server does not hold them.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A pool of `T`s: [`Pool::with`] lends one (a fresh one when the pool is empty) and takes
/// it back unless it grew past what is worth keeping.
#[derive(Debug)]
pub struct Pool<T> {
    free: Mutex<Free<T>>,
    keep: fn(&T) -> bool,
}

#[derive(Debug)]
struct Free<T> {
    sets: Vec<T>,
    /// When a set was last lent.
    lent: Option<Instant>,
}

impl<T: Default> Pool<T> {
    /// An empty pool that keeps what `keep` accepts (so that one huge request does not pin
    /// its memory).
    pub const fn new(keep: fn(&T) -> bool) -> Self {
        Pool {
            free: Mutex::new(Free {
                sets: Vec::new(),
                lent: None,
            }),
            keep,
        }
    }

    /// Runs `f` with a `T` from the pool.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut scratch = self.take();
        let answer = f(&mut scratch);
        self.give_back(scratch);
        answer
    }

    /// Lends a `T` for as long as the caller needs it (past an `await`, inside a buffer
    /// handed on); [`Pool::give_back`] returns it.
    pub fn take(&self) -> T {
        let mut free = self.free();
        free.lent = Some(Instant::now());
        free.sets.pop().unwrap_or_default()
    }

    /// Takes back a `T` lent by [`Pool::take`], unless it grew past what is worth keeping or
    /// the pool is full.
    pub fn give_back(&self, scratch: T) {
        if (self.keep)(&scratch) {
            let mut free = self.free();
            if free.sets.len() < max_kept() {
                free.sets.push(scratch);
            }
        }
    }

    /// Drops the sets kept when none was lent for `idle`; whether it did.
    pub fn release_idle(&self, idle: Duration) -> bool {
        let dropped = {
            let mut free = self.free();
            if free.sets.is_empty() || free.lent.is_some_and(|t| t.elapsed() < idle) {
                return false;
            }
            std::mem::take(&mut free.sets)
        };
        drop(dropped);
        true
    }

    /// The free list (a panic elsewhere while it was held leaves it usable: it is only
    /// ever pushed to and popped from).
    fn free(&self) -> MutexGuard<'_, Free<T>> {
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
        assert_eq!(pool.free().sets.len(), 0, "a grown buffer is dropped");
        // Many at once: the pool keeps at most its bound.
        fn nest(pool: &Pool<Vec<u8>>, depth: usize) {
            if depth > 0 {
                pool.with(|_| nest(pool, depth - 1));
            }
        }
        nest(&pool, 3 * max_kept());
        assert_eq!(pool.free().sets.len(), max_kept());
    }

    #[test]
    fn sets_are_let_go_only_once_none_was_lent_for_a_while() {
        let pool: Pool<Vec<u8>> = Pool::new(|_| true);
        assert!(!pool.release_idle(Duration::ZERO), "nothing to let go");
        pool.with(|v| v.push(1));
        assert!(
            !pool.release_idle(Duration::from_secs(3600)),
            "lent just now"
        );
        assert_eq!(pool.free().sets.len(), 1);
        std::thread::sleep(Duration::from_millis(20));
        assert!(pool.release_idle(Duration::from_millis(10)));
        assert!(pool.free().sets.is_empty());
        pool.with(|v| assert!(v.is_empty(), "a fresh set after the release"));
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
