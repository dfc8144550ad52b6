//! Prints the engine measurements of BENCHMARKS.md as Markdown.
//! Usage: `engine_report [scale] [minutes]` (defaults: 1.0 and 20).

// The same allocator as the server: the write path frees many small label strings.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let scale = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let minutes = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let report = iocdb_benches::report::engine(scale, minutes);
    println!("{}", report.markdown());
}
