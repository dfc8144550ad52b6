//! The process's allocator, and the calls the server makes into it besides allocating:
//! giving back the memory its threads hold free.
//!
//! mimalloc, built without transparent huge pages (see `docs/ARCHITECTURE.md`, "Memory"):
//! the write path frees many small label strings, which it does markedly faster than the
//! system allocator (see BENCHMARKS.md). It returns freed pages to the OS a while after they
//! are freed (its purge delay, a second), on later calls of the thread that owns them — and
//! a thread that goes idle makes no later calls. After a flush the writer threads that
//! allocated the head's chunks are often idle, so a flushed head stayed resident for seconds
//! (`memory_compare`: 156 MiB five seconds after the flush of a province day without
//! [`release_freed`], 88 MiB with it); after a load, the runtime's workers kept what they
//! had freed until their next request. So the server hands memory back where it knows a
//! thread is done: after a flush, when a runtime worker parks (at most once a second per
//! worker), and when a pool thread exits. Setting `MIMALLOC_PURGE_DELAY=0` returns
//! everything at once instead, at a cost to ingest (BENCHMARKS.md "Memory at flush").
//!
//! The `system-allocator` feature builds with the system allocator instead, for heap
//! profilers that hook `malloc` (heaptrack); the calls below then do nothing.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::time::{Duration, Instant};

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(feature = "system-allocator"))]
unsafe extern "C" {
    /// mimalloc's `void mi_collect(bool force)`.
    fn mi_collect(force: bool);
}

/// Returns to the OS the memory the allocator holds free now: the calling thread's heap,
/// and every arena's pending purges. A few milliseconds; called after a flush, when the
/// head has just let go of its samples, and by threads going idle or exiting.
pub fn release_freed() {
    let started = Instant::now();
    // SAFETY: `mi_collect` takes no pointer and only reads and changes mimalloc's own state,
    // under the locks mimalloc takes itself; its documentation allows calling it from any
    // thread at any time. It is the allocator this process allocates with (above), so the
    // symbol is linked from the same library.
    #[cfg(not(feature = "system-allocator"))]
    unsafe {
        mi_collect(true)
    };
    tracing::trace!(took = ?started.elapsed(), "freed memory handed back to the OS");
}

/// [`release_freed`] when this thread has not done so for a second: a runtime worker
/// parks whenever it runs out of work, thousands of times a second under load, and a
/// collection costs milliseconds.
pub fn release_freed_when_idle() {
    const AT_MOST_EVERY: Duration = Duration::from_secs(1);
    thread_local!(static LAST: Cell<Option<Instant>> = const { Cell::new(None) });
    LAST.with(|last| {
        if last.get().is_none_or(|t| t.elapsed() >= AT_MOST_EVERY) {
            last.set(Some(Instant::now()));
            release_freed();
        }
    });
}
