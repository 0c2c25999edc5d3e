//! `skiff image …`: putting images where nodes can run them.
//!
//! - `push FILE.wasm REF [--insecure]` packages a module or component as a
//!   Wasm OCI artifact and pushes it; `push DIR REF` pushes the image of an
//!   OCI image layout (a multi-platform index with its manifests);
//! - `pull REF` fetches an image into a node's store ahead of time;
//! - `import PATH` loads an OCI layout or archive into a node's store, for
//!   nodes without a registry.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Args, Subcommand};
use runtime::images::{
    self, ImageKind, ImageStore, Platform, PullPolicy, PullProgress, RegistryAuth, StoreConfig,
};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Push a .wasm file (packaged as a Wasm OCI artifact) or an OCI image layout.
    Push(PushArgs),
    /// Pull an image into a node's store.
    Pull(PullArgs),
    /// Load an OCI image layout (directory or tar) into a node's store.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct Credentials {
    /// Registry user name.
    #[arg(long, env = "SKIFF_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Registry password or token.
    #[arg(long, env = "SKIFF_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

#[derive(Debug, Args)]
struct PushArgs {
    /// A `.wasm` module or component, or an OCI image layout directory
    /// (one image, or a multi-platform index, pushed as it is).
    file: PathBuf,
    /// Where to push it (`127.0.0.1:5000/team/app:v1`).
    reference: String,
    /// Speak plain http to the registry (loopback and lab registries).
    #[arg(long)]
    insecure: bool,
    /// Which image of a layout holding several (its
    /// `org.opencontainers.image.ref.name`).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    credentials: Credentials,
}

#[derive(Debug, Args)]
struct PullArgs {
    reference: String,
    /// The node's data directory; the store is its `images/`.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
    /// A registry (`host:port`) spoken to over plain http; repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    #[command(flatten)]
    credentials: Credentials,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// An OCI layout directory, a tar (optionally gzip) of one, or a bare
    /// `.wasm` module or component (with --name).
    path: PathBuf,
    /// The reference a bare `.wasm` is stored as (`registry/app:v1`), so
    /// pods naming that image run it without any registry.
    #[arg(long)]
    name: Option<String>,
    /// The node's data directory; the store is its `images/`.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value_os_t = super::default_data_dir())]
    data_dir: PathBuf,
}

pub fn run(a: ImageArgs) -> anyhow::Result<ExitCode> {
    match a.verb {
        Verb::Push(p) => block_on(push(p)),
        Verb::Pull(p) => block_on(pull(p)),
        Verb::Import(i) => import(i),
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

fn auths(c: &Credentials, reference: &str) -> Vec<RegistryAuth> {
    let (Some(username), Some(password)) = (&c.username, &c.password) else {
        return Vec::new();
    };
    // The registry part of the reference, by the distribution rule: a
    // first component with a dot, a port or `localhost`; Docker Hub else.
    let registry = match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    };
    vec![RegistryAuth {
        registry,
        username: username.clone(),
        password: password.clone(),
    }]
}

async fn push(p: PushArgs) -> anyhow::Result<ExitCode> {
    let meter = Meter::new("pushing");
    let auths = auths(&p.credentials, &p.reference);
    let digest = if p.file.is_dir() {
        images::push_layout(
            &p.file,
            p.name.as_deref(),
            &p.reference,
            p.insecure,
            &auths,
            &|e| meter.update(e),
        )
        .await?
    } else {
        if p.name.is_some() {
            anyhow::bail!(
                "--name picks an image of an OCI layout directory; {} is a file",
                p.file.display()
            );
        }
        images::push_wasm(&p.file, &p.reference, p.insecure, &auths, &|e| {
            meter.update(e)
        })
        .await?
    };
    meter.finish();
    println!("{}@{digest}", p.reference);
    Ok(ExitCode::SUCCESS)
}

async fn pull(p: PullArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&p.data_dir, p.insecure_registries)?;
    let meter = Meter::new("pulling");
    let image = store
        .ensure(
            &p.reference,
            PullPolicy::Always,
            &auths(&p.credentials, &p.reference),
            &Platform::node(),
            &|e| meter.update(e),
        )
        .await?;
    meter.finish();
    println!("{}", describe(&image));
    Ok(ExitCode::SUCCESS)
}

fn import(i: ImportArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&i.data_dir, Vec::new())?;
    let is_wasm = std::fs::File::open(&i.path)
        .and_then(|mut f| {
            let mut magic = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut magic).map(|()| magic == *b"\0asm")
        })
        .unwrap_or(false);
    let imported = match (is_wasm, &i.name) {
        (true, Some(name)) => {
            let bytes =
                std::fs::read(&i.path).with_context(|| format!("reading {}", i.path.display()))?;
            vec![store.add_wasm(name, &bytes)?]
        }
        (true, None) => anyhow::bail!(
            "{} is a bare Wasm module: say which image it is with --name REGISTRY/NAME:TAG",
            i.path.display()
        ),
        (false, _) => store.import(&i.path)?,
    };
    for image in &imported {
        println!("{}", describe(image));
    }
    eprintln!(
        "imported {} image(s) into {}",
        imported.len(),
        store.root().display()
    );
    Ok(ExitCode::SUCCESS)
}

fn open_store(
    data_dir: &std::path::Path,
    insecure_registries: Vec<String>,
) -> anyhow::Result<ImageStore> {
    let dir = data_dir.join(images::STORE_DIR);
    Ok(ImageStore::open(
        &dir,
        StoreConfig {
            insecure_registries,
        },
    )?)
}

fn describe(image: &images::Image) -> String {
    let kind = match &image.kind {
        ImageKind::Wasm {
            component: true, ..
        } => "wasm component".to_string(),
        ImageKind::Wasm { .. } => "wasm module".to_string(),
        ImageKind::Linux { .. } => match &image.platform {
            Some(p) => format!("container image {p}"),
            None => "container image".to_string(),
        },
    };
    format!(
        "{} {} ({kind}, {})",
        image.reference,
        image.digest,
        bytes(image.size)
    )
}

/// Byte counts on stderr: one line rewritten in place on a terminal, a
/// line per finished blob otherwise (CI logs).
struct Meter {
    verb: &'static str,
    tty: bool,
    state: Mutex<(u64, u64, std::collections::HashMap<String, u64>)>,
}

impl Meter {
    fn new(verb: &'static str) -> Meter {
        Meter {
            verb,
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new((0, 0, Default::default())),
        }
    }

    fn update(&self, e: PullProgress) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (total, done, per_blob) = &mut *guard;
        let finished = match e {
            PullProgress::Resolved { total: t, .. } => {
                *total = t;
                None
            }
            PullProgress::Cached { digest, size } => {
                per_blob.insert(digest.clone(), size);
                Some(format!("{} already present", short(&digest)))
            }
            PullProgress::Blob {
                digest,
                done: d,
                size,
            } => {
                per_blob.insert(digest.clone(), d);
                (d == size).then(|| format!("{} {}", short(&digest), bytes(size)))
            }
        };
        *done = per_blob.values().sum();
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(
                err,
                "\r{} {} / {}   ",
                self.verb,
                bytes(*done),
                bytes(*total)
            );
        } else if let Some(line) = finished {
            let _ = writeln!(
                err,
                "{}: {line} ({} / {})",
                self.verb,
                bytes(*done),
                bytes(*total)
            );
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
