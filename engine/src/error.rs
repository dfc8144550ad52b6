//! The engine's one public error type, and the path-free decode error that decoders return.
//!
//! Variants are what a caller can act on: bad input (fix the request), an exhausted resource
//! (retry later), a stopped write path (reopen), corruption (an operator must look at a file).
//! Rejected *samples* are not errors: they are reported in [`crate::WriteOutcome`].
//!
//! May use: nothing else of the engine.

use std::io;
use std::path::PathBuf;

/// Result alias for engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in an engine call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed; `path` names the file or directory.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk do not decode; `file` and `offset` say where.
    #[error("corrupt data in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The corrupt file.
        file: PathBuf,
        /// Byte offset in the file where the problem was found.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A configured limit or budget was reached; retry later or raise the limit.
    #[error("resource exhausted: {limit}: {detail}")]
    ResourceExhausted {
        /// Which limit.
        limit: Limit,
        /// What was asked for and what the limit allows.
        detail: String,
    },
    /// The write path has stopped after an unrecoverable WAL failure (for example a failed
    /// fsync). Queries still work; the engine checks the WAL on disk and resumes writing by
    /// itself, with back-off ([`crate::Stats::write_recoveries`]). Retry the write later.
    #[error("writes are stopped: {reason}; the engine is recovering, retry later")]
    WritesStopped {
        /// The failure that stopped the write path.
        reason: String,
    },
    /// A query ran past its time limit (its own deadline or the configured timeout).
    #[error("deadline exceeded: the query ran longer than {limit:?}; narrow its range or matchers")]
    DeadlineExceeded {
        /// The time limit that was passed.
        limit: std::time::Duration,
    },
    /// The request itself is malformed (as opposed to one bad sample in it).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A well-formed query failed while it ran, for example a binary operation whose
    /// matching is ambiguous or a result with two series of the same labels.
    #[error("execution error: {0}")]
    Execution(String),
    /// Another process holds the data directory.
    #[error("data directory {} is locked by another process", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The engine has been closed.
    #[error("the engine is closed")]
    Closed,
    /// A bug, never bad input: for example a query worker that panicked. The call failed;
    /// the engine goes on serving.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error means the disk is full (ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            Error::ResourceExhausted { limit, .. } => *limit == Limit::Disk,
            _ => false,
        }
    }
}

/// Names the file of a failed operation: `vfs.read(&path).at(&path)?` — the one way an
/// I/O error becomes an engine error.
pub(crate) trait IoContext<T> {
    /// Wraps the error, if any, with `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// The limits a call can run into, named as in [`crate::Options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// The head's memory budget ([`crate::Options::head_memory_budget`]).
    HeadMemoryBudget,
    /// A namespace's share of the head memory ([`crate::Engine::set_head_shares`]).
    HeadMemoryShare,
    /// The disk is full: writes are refused until space is freed; queries go on.
    Disk,
    /// [`crate::QueryLimits::max_series`].
    QueryMaxSeries,
    /// [`crate::QueryLimits::max_samples`].
    QueryMaxSamples,
    /// [`crate::QueryLimits::max_points_per_series`].
    QueryMaxPointsPerSeries,
}

impl Limit {
    /// The limit's name as operators see it in errors and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Limit::HeadMemoryBudget => "head_memory_budget",
            Limit::HeadMemoryShare => "head_memory_share",
            Limit::Disk => "disk",
            Limit::QueryMaxSeries => "query_max_series",
            Limit::QueryMaxSamples => "query_max_samples",
            Limit::QueryMaxPointsPerSeries => "query_max_points_per_series",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoder's error: where in the buffer it failed and why, without knowing the file.
/// The caller that knows the file turns it into [`Error::Corrupt`] with [`DecodeError::in_file`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {reason}")]
pub struct DecodeError {
    /// Offset of the failure, relative to the start of the decoded buffer.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    /// A decode failure at `offset` (relative to the buffer being decoded).
    pub fn new(offset: u64, reason: impl Into<String>) -> Self {
        DecodeError {
            offset,
            reason: reason.into(),
        }
    }

    /// Shifts the offset by the position of the decoded buffer inside a larger one.
    pub fn shifted(mut self, by: u64) -> Self {
        self.offset += by;
        self
    }

    /// Names the file: `base` is where the decoded buffer starts in it.
    pub fn in_file(self, file: impl Into<PathBuf>, base: u64) -> Error {
        Error::Corrupt {
            file: file.into(),
            offset: base + self.offset,
            reason: self.reason,
        }
    }
}
