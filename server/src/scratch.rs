//! Per-thread scratch memory for the write paths: the buffers one request fills (a
//! decompressed body, the arrays of a message read in place) are kept by the thread for its
//! next request, so that a request costs no fresh pages and no growth — both showed in
//! profiles of the write path. Nothing may await while it holds them: a handler takes them,
//! runs to its answer, and gives them back.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Runs `f` with this thread's `T` from `key`, then keeps it for the next request unless
/// `keep` says it grew too large (it is then dropped, so one huge request does not pin its
/// memory to the thread). Re-entered (not expected), `f` gets a fresh `T`.
pub fn with<T: Default, R>(
    key: &'static LocalKey<RefCell<T>>,
    keep: fn(&T) -> bool,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let answer = f(&mut scratch);
            if !keep(&scratch) {
                *scratch = T::default();
            }
            answer
        }
        Err(_) => f(&mut T::default()),
    })
}
