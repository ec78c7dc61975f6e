//! `chaosctl`: command-line client of chaos-daemon. See `chaosctl --help`.

use clap::Parser;

fn main() {
    let cli = chaos_daemon::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(chaos_daemon::cli::run(cli));
    std::process::exit(code);
}
