//! The write-ahead log: numbered files of checksummed frames, written with group commit.
//!
//! Two layers, kept apart as in Prometheus: [`frame`] knows lengths and checksums and finds
//! torn tails; [`record`] knows what a payload means (series definitions, sample batches).
//! [`writer`] appends with one fsync shared by all concurrent writers; [`replay`] reads
//! files back at open.
//!
//! Each WAL file is self-contained: a series' definition is written into a file before the
//! first samples of that series in it, so files before a flush point can be deleted without
//! losing the definitions later files need.
//!
//! May use: `model`, `codec`, `fs`, `options`, errors.

pub mod frame;
pub mod record;
pub mod replay;
pub mod writer;

pub use writer::Wal;
