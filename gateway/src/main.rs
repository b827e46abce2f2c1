use clap::Parser;
use gateway::config::{Cli, Command, Config};

// jemalloc returns memory freed after a burst of large request bodies to the system, where
// glibc's per-thread arenas keep it: resident memory stays near what is in use.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Members(args)) => gateway::members_cli::run(&args),
        None => run(&cli.run),
    };
    std::process::exit(code);
}

fn run(args: &gateway::config::RunArgs) -> i32 {
    let config = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: {e}");
            return 2;
        }
    };
    gateway::logging::init(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(gateway::gateway::run(config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("gateway: {e:#}");
            1
        }
    }
}
