//! Small checksummed text files (MANIFEST, METADATA): a body of lines, then a
//! `crc32c <8 hex digits>` line over every byte before it; replaced atomically (temporary
//! file, fsync, rename, directory fsync), so a crash leaves the old or the new one and a
//! damaged one is noticed.
//!
//! May use: `fs`, errors.

use std::path::Path;

use crate::error::IoContext;
use crate::fs::Vfs;
use crate::{Error, Result};

/// The body followed by its checksum line.
pub fn seal(body: String) -> String {
    let crc = crc32c::crc32c(body.as_bytes());
    format!("{body}crc32c {crc:08x}\n")
}

/// The checked body of a sealed file; `path` names it in errors.
pub fn open<'a>(path: &Path, data: &'a [u8]) -> Result<&'a str> {
    let corrupt = |offset: usize, reason: &str| Error::Corrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(data).map_err(|e| corrupt(e.valid_up_to(), "not UTF-8"))?;
    let at = text
        .rfind("crc32c ")
        .ok_or_else(|| corrupt(text.len(), "no checksum line"))?;
    let (body, crc) = text.split_at(at);
    let stored = u32::from_str_radix(crc.trim_start_matches("crc32c ").trim(), 16)
        .map_err(|_| corrupt(at, "unreadable checksum"))?;
    if crc32c::crc32c(body.as_bytes()) != stored {
        return Err(corrupt(at, "checksum mismatch"));
    }
    Ok(body)
}

/// A text field on one line: tabs, newlines and backslashes escaped as `\t`, `\n`, `\\`.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

/// The text [`escape`] was given.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// Reads `dir/name`; `None` when it does not exist.
pub fn read(vfs: &dyn Vfs, dir: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    match vfs.read(&path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Replaces `dir/name` with `text` atomically and durably, through `dir/tmp_name`.
pub fn replace(vfs: &dyn Vfs, dir: &Path, name: &str, tmp_name: &str, text: &str) -> Result<()> {
    let (tmp, path) = (dir.join(tmp_name), dir.join(name));
    let file = vfs.create(&tmp).at(&tmp)?;
    file.write_all(text.as_bytes()).at(&tmp)?;
    file.sync().at(&tmp)?;
    drop(file);
    vfs.rename(&tmp, &path).at(&path)?;
    vfs.sync_dir(dir).at(dir)
}
