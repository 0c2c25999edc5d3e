//! skiff's command-line verbs, one file each.

mod bench;
mod image;
mod join;
mod kubectl;
mod node;
mod token;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// skiff: a WebAssembly-first, lightweight orchestrator that speaks the
/// Kubernetes API.
#[derive(Debug, Parser)]
#[command(name = "skiff", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane on the embedded store and write a kubeconfig.
    Up(up::UpArgs),
    /// Run a node agent that joins a cluster (`skiff node --server URL …`).
    Node(node::NodeArgs),
    /// Run a benchmark against an in-process server.
    Bench(bench::BenchArgs),
    /// Run kubectl against the cluster in a data directory
    /// (`skiff kubectl get pods`).
    Kubectl(kubectl::KubectlArgs),
    /// Push, pull and import images (`skiff image push hello.wasm REF`).
    Image(image::ImageArgs),
    /// Make join tokens for nodes (`skiff token create --ttl 24h`).
    Token(token::TokenArgs),
    /// The container shim, init and exec helper that skiff re-executes
    /// itself as (see the `container` crate); not for people.
    #[command(name = "__container", hide = true)]
    Container {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

impl Cli {
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Up(a) => up::run(a),
            Command::Node(a) => node::run(a),
            Command::Kubectl(a) => kubectl::run(a),
            Command::Bench(a) => bench::run(a),
            Command::Image(a) => image::run(a),
            Command::Token(a) => token::run(a),
            // Single-threaded here: clap has parsed, nothing has spawned.
            Command::Container { args } => {
                return ExitCode::from(u8::try_from(container::main_hidden(args)).unwrap_or(255));
            }
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("skiff: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Where skiff keeps its state unless told otherwise: `/var/lib/skiff` for
/// root, `~/.local/share/skiff` for everyone else.
pub fn default_data_dir() -> PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    match std::env::var_os("HOME") {
        Some(home) if !is_root => PathBuf::from(home).join(".local/share/skiff"),
        _ => PathBuf::from("/var/lib/skiff"),
    }
}
