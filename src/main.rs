use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use fastcart::cli::Cli;
use fastcart::run::{run, Aws, FAILED};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let provider = Aws::new();
    match runtime.block_on(run(cli, &provider, std::io::stdin().is_terminal())) {
        Ok(code) => ExitCode::from(code),
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(FAILED)
        }
    }
}
