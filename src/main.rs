use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use fastcart::cli::Cli;
use fastcart::run::{run, Aws, FAILED};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(spec) = &cli.global.log_level {
        if let Err(e) = fastcart::log::init(spec) {
            eprintln!("error: {e}");
            return ExitCode::from(FAILED);
        }
    }
    // `apply FILE` works on the plan's stack, environment and region: the
    // clients must be made for that region.
    if let Err(report) = fastcart::run::saved_plan_settings(&mut cli) {
        eprintln!("{report:?}");
        return ExitCode::from(FAILED);
    }
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
    let outcome = runtime.block_on(async {
        let provider = Aws::connect(cli.global.region()).await;
        let verbose = cli.global.verbose;
        let outcome = run(cli, &provider, std::io::stdin().is_terminal()).await;
        if verbose {
            for (operation, n) in provider.requests() {
                eprintln!("aws requests: {operation} {n}");
            }
        }
        outcome
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(FAILED)
        }
    }
}
