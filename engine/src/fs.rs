//! The file-system seam. Every file operation of the engine goes through [`Vfs`], so tests
//! can fail the k-th operation (EIO, ENOSPC) deterministically and in-process, and the real
//! implementation ([`OsFs`]) stays small enough to read in one sitting.
//!
//! Immutable files (segments) are read through [`Bytes`], a safe, read-only byte handle; the
//! memory map behind it lives in `fs/mmap.rs`, the only module allowed `unsafe`.
//!
//! May use: nothing else of the engine.

mod bytes;
pub mod layout;
mod mmap;
mod os;

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

pub use bytes::Bytes;
pub use os::OsFs;

/// A file open for writing (appending). Its operations take `&self` so that a sync may run
/// while appends go on (the WAL's interval policy syncs up to 100 ms of writes, which takes
/// milliseconds, and its writers must not wait for it): a sync makes durable at least what
/// was written before it began. Callers keep appends themselves in order.
pub trait VfsFile: Send + Sync + Debug {
    /// Writes all of `buf` at the end of the file.
    fn write_all(&self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written before the call durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// Writes zeros over `[from, to)` without moving the position appends write at (the WAL
    /// writes ahead of its frames so that an fdatasync over them need not commit a new file
    /// length). Made durable by the next [`VfsFile::sync`].
    fn write_zeros(&self, from: u64, to: u64) -> io::Result<()>;
    /// Cuts the file to `len` bytes and makes that durable (the WAL's unused zeros when it
    /// moves on to a new file or closes).
    fn trim(&self, len: u64) -> io::Result<()>;
}

/// The file operations the engine needs, and nothing more.
pub trait Vfs: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory (full paths), in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    /// Renames a file, replacing the target.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Opens an immutable, fully written file for reading (memory-mapped by [`OsFs`]).
    fn open_immutable(&self, path: &Path) -> io::Result<Bytes>;
    /// Makes `to` another name of the file `from` (a snapshot shares immutable segments
    /// this way). The default says it cannot, and callers copy instead.
    fn hard_link(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}
