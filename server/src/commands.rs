//! One file per subcommand; `load.rs` is the gRPC load client `bench` drives.

pub mod audit;
pub mod bench;
pub mod client;
pub mod compact;
pub mod delete;
pub mod export;
pub mod import;
pub mod inspect;
mod load;
pub mod quality;
pub mod repair;
pub mod serve;
pub mod verify;

use std::io::IsTerminal;

/// A spinner with `message` on stderr while a long command runs, when stderr is a terminal;
/// nothing when it is piped or redirected.
pub fn spinner(message: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
