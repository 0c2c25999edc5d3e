//! The `skiff` command.

mod client;
mod commands;
mod platforms;

use clap::Parser;

fn main() -> std::process::ExitCode {
    commands::Cli::parse().run()
}
