//! The `advlens` command. Results go to stdout, progress to stderr.
//! Exit codes: 0 success, 1 interrupted, 2 error.

mod cli;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use advlens_trainer::data::{report, DatasetKind, Split};
use advlens_trainer::{device, export, train};
use anyhow::Result;
use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: cli::Cli) -> Result<ExitCode> {
    match args.command {
        cli::Command::Train(a) => {
            let device = device::select(&a.device, a.threads)?;
            eprintln!("device: {}", device::describe(device, a.threads));
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            // The first Ctrl-C asks the loop to save and stop; a second one kills at once.
            ctrlc::set_handler(move || {
                if flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nstopping after this step (Ctrl-C again to abort without saving)");
            })?;
            let config = a.into_config();
            let summary = train::train(&config, device, stop, args.quiet)?;
            println!("{}", serde_json::to_string(&summary)?);
            if summary.interrupted {
                eprintln!("interrupted: the checkpoint in {} holds the weights so far", config.out_dir.display());
                return Ok(ExitCode::from(1));
            }
            eprintln!("run written to {}; export it with `advlens export --run {}`", config.out_dir.display(), config.out_dir.display());
        }
        cli::Command::Export(a) => {
            let config = a.into_config();
            let summary = export::export(&config)?;
            match summary.test_accuracy {
                Some(acc) => println!(
                    "bundle written to {} (test accuracy {:.2}%, {} sample images)",
                    config.out_dir.display(),
                    100.0 * acc,
                    summary.samples
                ),
                None => println!("bundle written to {} (no --data: no accuracy, no samples)", config.out_dir.display()),
            }
        }
        cli::Command::Data(cli::DataCommand::List) => print!("{}", report::list()),
        cli::Command::Data(cli::DataCommand::Verify(a)) => {
            let kind = DatasetKind::parse(&a.dataset)?;
            let mut ok = true;
            for r in report::verify(kind, &a.data)? {
                let verdict = if r.count == r.expected { "ok" } else { "WRONG COUNT" };
                ok &= r.count == r.expected;
                println!("{} {}: {} images (expected {}) {verdict}; checksum {:016x}", kind.name(), r.split, r.count, r.expected, r.checksum);
                println!("  per class: {:?}", r.per_class);
            }
            if !ok {
                return Ok(ExitCode::from(1));
            }
        }
        cli::Command::Data(cli::DataCommand::Show { data, split, per_class, out }) => {
            let kind = DatasetKind::parse(&data.dataset)?;
            let split = match split.as_str() {
                "train" => Split::Train,
                "test" => Split::Test,
                other => anyhow::bail!("unknown split `{other}`: use train or test"),
            };
            let rows = report::show(kind, &data.data, split, per_class.max(1), &out)?;
            println!("wrote {} (rows: {})", out.display(), rows.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
