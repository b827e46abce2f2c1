use gateway::config::{Cli, Command};

// jemalloc returns memory freed after a burst of large request bodies to the system, where
// glibc's per-thread arenas keep it: resident memory stays near what is in use.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = match Cli::load(std::env::args_os()) {
        Ok(cli) => cli,
        Err(gateway::config::LoadError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(2);
        }
    };
    let code = match cli.command {
        Some(Command::Members(args)) => gateway::members_cli::run(&args),
        None => run(cli.run),
    };
    std::process::exit(code);
}

fn run(config: gateway::config::Config) -> i32 {
    let config = match config.validate() {
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
    match runtime.block_on(gateway::server::run(config)) {
        Ok(()) => 0,
        Err(e) => {
            let e = anyhow::Error::from(e);
            tracing::error!("{e:#}");
            eprintln!("gateway: {e:#}");
            1
        }
    }
}
