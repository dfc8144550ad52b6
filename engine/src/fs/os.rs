//! The real file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::mmap::ReadOnlyMap;
use super::{Bytes, Vfs, VfsFile};

/// The operating system's file system, with segments read through memory maps.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl VfsFile for OsFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        // `&File` writes at the descriptor's offset; the caller keeps appends in order.
        (&self.0).write_all(buf)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    #[cfg(unix)]
    fn write_zeros(&self, mut from: u64, to: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        while from < to {
            let n = (to - from).min(ZEROS.len() as u64) as usize;
            let zeros = ZEROS.get(..n).unwrap_or(&ZEROS);
            self.0.write_all_at(zeros, from)?;
            from += zeros.len() as u64;
        }
        Ok(())
    }

    /// Without positional writes, nothing is written ahead: the zeros only make syncs
    /// cheaper, and the file's contents are the same without them.
    #[cfg(not(unix))]
    fn write_zeros(&self, _from: u64, _to: u64) -> io::Result<()> {
        Ok(())
    }

    fn trim(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.sync_all()
    }
}

impl Vfs for OsFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn open_immutable(&self, path: &Path) -> io::Result<Bytes> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::owned(Vec::new()));
        }
        Ok(Bytes::mapped(ReadOnlyMap::map(&file)?))
    }
}
