//! The process's allocator, and the one call the server makes into it besides allocating:
//! giving back, after a flush, the memory the flushed head held.
//!
//! mimalloc, built without transparent huge pages (see `docs/ARCHITECTURE.md`, "Memory"):
//! the write path frees many small label strings, which it does markedly faster than the
//! system allocator (see BENCHMARKS.md). It returns freed pages to the OS a while after they
//! are freed, on later calls of the thread that owns them — and after a flush the writer
//! threads that allocated the head's chunks are often idle, so a flushed head stayed
//! resident for seconds (`memory_compare`: 156 MiB five seconds after the flush of a
//! province day without [`release_freed`], 88 MiB with it).
#![allow(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's `void mi_collect(bool force)`.
    fn mi_collect(force: bool);
}

/// Returns to the OS the memory the allocator holds free now: the calling thread's heap,
/// abandoned pages and every arena's pending purges. A few milliseconds; called after a
/// flush, when the head has just let go of its samples.
pub fn release_freed() {
    let started = std::time::Instant::now();
    // SAFETY: `mi_collect` takes no pointer and only reads and changes mimalloc's own state,
    // under the locks mimalloc takes itself; its documentation allows calling it from any
    // thread at any time. It is the allocator this process allocates with (above), so the
    // symbol is linked from the same library.
    unsafe { mi_collect(true) };
    tracing::debug!(took = ?started.elapsed(), "freed memory handed back to the OS");
}
