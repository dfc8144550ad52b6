//! The engine's integration tests, one binary, modules by theme.

mod common;
