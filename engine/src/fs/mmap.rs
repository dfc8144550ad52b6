//! The one module that may use `unsafe`: a read-only memory map of an immutable file.
//!
//! # Safety argument
//! `memmap2::Mmap::map` is unsafe because the mapped file could change underneath us: bytes
//! seen through a `&[u8]` would then change (undefined behaviour in Rust's model), and a
//! file shortened by someone else makes reads past its new end raise SIGBUS. The engine
//! upholds these rules so that neither happens in normal operation:
//! 1. Only segment files are mapped, and only after they were fully written to a temporary
//!    name, fsynced and renamed into place. The engine never writes, truncates or renames a
//!    segment after that; it only removes whole files, which leaves existing maps valid
//!    (the inode lives on until the last map is dropped).
//! 2. The map covers exactly the file's length at open time, read from the open file
//!    descriptor, so no page lies past the end of the file.
//! 3. Empty files are never mapped (mapping zero bytes is an error on Linux); they get an
//!    empty owned buffer instead.
//! 4. The data directory is owned by the engine (held with an exclusive lock file): another
//!    process editing files in it is outside the contract, as it is for every database.
//!
//! Every byte read through the map is still treated as untrusted: decoders check lengths,
//! offsets and checksums before using them.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// A read-only map of a whole file.
pub(crate) struct ReadOnlyMap(memmap2::Mmap);

impl ReadOnlyMap {
    /// Maps `file`, which must be non-empty and immutable (see the module's safety argument).
    pub(crate) fn map(file: &File) -> io::Result<ReadOnlyMap> {
        let len = file.metadata()?.len();
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map an empty file",
            ));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        // SAFETY: the file is immutable, fully written and fsynced (rule 1), the map length
        // is its real length (rule 2) and it is non-empty (rule 3).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(ReadOnlyMap(map))
    }

    /// Lets go of the pages of `[start, end)` this process has mapped: they stay in the page
    /// cache, and the next read of them maps them again from the same file.
    pub(crate) fn release(&self, start: usize, end: usize) {
        let end = end.min(self.0.len());
        if start >= end {
            return;
        }
        // SAFETY: MADV_DONTNEED on a read-only map of a file only drops this process's page
        // table entries; the next read faults the file's pages in again, and the file never
        // changes (rule 1), so every byte reads the same before and after: no reference into
        // the map can observe a difference. Only an advice: an error changes nothing.
        #[cfg(target_os = "linux")]
        let _ = unsafe {
            self.0
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}
