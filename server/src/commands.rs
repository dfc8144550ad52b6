//! One file per subcommand; `load.rs` is the gRPC load client `bench` drives.

pub mod bench;
pub mod client;
pub mod compact;
pub mod delete;
pub mod export;
pub mod import;
pub mod inspect;
mod load;
pub mod repair;
pub mod serve;
pub mod verify;
