//! One file per subcommand.

pub mod bench;
pub mod client;
pub mod serve;
