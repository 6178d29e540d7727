//! `cargo chassis new NAME [--queue …] [--jobs …] [--discovery …] [--otel] [--chassis-path DIR] [--dir DIR]`.
//!
//! Without `--chassis-path` or `--crates-io`, the service depends on the
//! chassis repository this binary was installed from when it is still there
//! (so a clone's `cargo install --path crates/cargo-chassis` makes services
//! of that clone), and on crates.io otherwise.
//!
//! Exit codes: 0 generated; 2 a bad command line (an unknown option or value,
//! an invalid crate name); 1 the directory exists and is not empty, or a file
//! could not be written.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use cargo_chassis::{Discovery, Error, JobStore, Options, QueueBackend};
use clap::{Arg, ArgAction, ArgMatches, Command};

fn values(names: impl IntoIterator<Item = &'static str>) -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(names)
}

fn command() -> Command {
    let new = Command::new("new")
        .about("Creates a new chassis service in ./NAME (or --dir)")
        .arg(Arg::new("name").value_name("NAME").required(true).help("The crate name (letters, digits, - and _)"))
        .arg(
            Arg::new("queue")
                .long("queue")
                .value_parser(values(QueueBackend::ALL.iter().map(|v| v.as_str())))
                .default_value("sqlite")
                .help("The task queue"),
        )
        .arg(
            Arg::new("jobs")
                .long("jobs")
                .value_parser(values(JobStore::ALL.iter().map(|v| v.as_str())))
                .default_value("none")
                .help("The job store"),
        )
        .arg(
            Arg::new("discovery")
                .long("discovery")
                .value_parser(values(Discovery::ALL.iter().map(|v| v.as_str())))
                .default_value("none")
                .help("Service registration and discovery"),
        )
        .arg(Arg::new("otel").long("otel").action(ArgAction::SetTrue).help("Export spans over OTLP/HTTP"))
        .arg(
            Arg::new("chassis-path")
                .long("chassis-path")
                .value_name("DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .help(
                    "Depend on the chassis repository at DIR (default: the one cargo-chassis was \
                     installed from, if it is still there; else crates.io)",
                ),
        )
        .arg(
            Arg::new("crates-io")
                .long("crates-io")
                .action(ArgAction::SetTrue)
                .conflicts_with("chassis-path")
                .help("Depend on chassis from crates.io, even when installed from a repository"),
        )
        .arg(
            Arg::new("dir")
                .long("dir")
                .value_name("DIR")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Where to create it (default: ./NAME)"),
        );
    // `cargo chassis …` runs `cargo-chassis chassis …`.
    Command::new("cargo").bin_name("cargo").version(env!("CARGO_PKG_VERSION")).subcommand_required(true).subcommand(
        Command::new("chassis").about("Chassis services: scaffolding").subcommand_required(true).subcommand(new),
    )
}

fn options(matches: &ArgMatches) -> Result<(Options, PathBuf), Error> {
    let text = |id: &str| matches.get_one::<String>(id).map_or("", String::as_str);
    let name = text("name");
    let mut options = Options::new(name)?
        .queue(text("queue").parse()?)
        .jobs(text("jobs").parse()?)
        .discovery(text("discovery").parse()?)
        .otel(matches.get_flag("otel"));
    let local = match matches.get_one::<PathBuf>("chassis-path") {
        Some(path) => Some(path.clone()),
        None if matches.get_flag("crates-io") => None,
        None => source_repository(),
    };
    if let Some(path) = local {
        // An absolute path, so the generated Cargo.toml works from its own directory.
        options = options.chassis_path(std::path::absolute(&path).unwrap_or(path));
    }
    let dir = matches.get_one::<PathBuf>("dir").cloned().unwrap_or_else(|| PathBuf::from(name));
    Ok((options, dir))
}

/// The chassis repository this binary was built from (`cargo install --path
/// crates/cargo-chassis`), if it is still there: its facade's manifest names
/// `chassis-kit`. Built from crates.io's package, there is none.
fn source_repository() -> Option<PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let is_chassis = manifest.contains("name = \"chassis-kit\"") && root.join("crates/chassis-testkit").is_dir();
    is_chassis.then(|| root.to_owned())
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool
fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let Some(new) = matches.subcommand_matches("chassis").and_then(|m| m.subcommand_matches("new")) else {
        return ExitCode::from(2);
    };
    let (options, dir) = match options(new) {
        Ok(found) => found,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match cargo_chassis::generate(&options, &dir) {
        Ok(files) => {
            println!("created {} ({} files): cd {} && cargo test", dir.display(), files.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}
