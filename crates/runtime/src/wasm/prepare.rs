//! From a `.wasm` file to something that instantiates in microseconds.
//!
//! The file is classified by its header (core module or component),
//! compiled (wasmtime's cache makes a recompilation after a restart a file
//! read), checked to be a WASI *command* (a `_start` export, or the
//! `wasi:cli/run` interface), and pre-instantiated against the WASI
//! linker so each pod only allocates and initialises its instance.

use std::path::Path;

use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::guest::{Guest, Linkers, P2Ctx};
use crate::cri::RuntimeError;

/// A module or component ready to instantiate.
pub enum Prepared {
    /// A WASI preview 1 command module.
    Module(wasmtime::InstancePre<Guest<WasiP1Ctx>>),
    /// A WASI preview 2 command component.
    Component(CommandPre<Guest<P2Ctx>>),
}

/// What a `.wasm` file holds, from its 8-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Module,
    Component,
}

/// Classify `bytes`: `\0asm` then a version (1 for core modules) and a
/// layer (1 for components).
pub fn kind(bytes: &[u8]) -> Result<Kind, String> {
    let Some(header) = bytes.get(..8) else {
        return Err(format!(
            "{} bytes is too short for a Wasm module",
            bytes.len()
        ));
    };
    if &header[..4] != b"\0asm" {
        return Err("not a WebAssembly binary (no \\0asm magic)".into());
    }
    match (&header[4..6], &header[6..8]) {
        ([1, 0], [0, 0]) => Ok(Kind::Module),
        (_, [1, 0]) => Ok(Kind::Component),
        _ => Err(format!(
            "unsupported WebAssembly version {:?}",
            &header[4..8]
        )),
    }
}

/// Read, compile and pre-instantiate the file at `path`. Blocking: runs on
/// tokio's blocking pool.
pub fn prepare(
    engine: &wasmtime::Engine,
    linkers: &Linkers,
    path: &Path,
) -> Result<Prepared, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|e| {
        RuntimeError::Internal(format!("reading the module {}: {e}", path.display()))
    })?;
    let invalid = |what: &str, e: wasmtime::Error| {
        RuntimeError::InvalidImage(format!("{what}: {}", root_cause(&e)))
    };
    match kind(&bytes).map_err(RuntimeError::InvalidImage)? {
        Kind::Module => {
            let module = wasmtime::Module::new(engine, &bytes)
                .map_err(|e| invalid("invalid Wasm module", e))?;
            if module.get_export("_start").is_none() {
                return Err(RuntimeError::InvalidImage(
                    "the module exports no _start function: it is a library (reactor), not a WASI command".into(),
                ));
            }
            let pre = linkers
                .p1
                .instantiate_pre(&module)
                .map_err(|e| invalid("the module needs imports skiff does not provide", e))?;
            Ok(Prepared::Module(pre))
        }
        Kind::Component => {
            let component = wasmtime::component::Component::new(engine, &bytes)
                .map_err(|e| invalid("invalid Wasm component", e))?;
            let pre = linkers
                .p2
                .instantiate_pre(&component)
                .map_err(|e| invalid("the component needs imports skiff does not provide", e))?;
            let pre = CommandPre::new(pre).map_err(|e| {
                invalid(
                    "the component does not export wasi:cli/run (it is not a WASI command)",
                    e,
                )
            })?;
            Ok(Prepared::Component(pre))
        }
    }
}

/// The innermost message of a wasmtime error chain: the part a person can
/// act on ("unknown import: `env::foo` has not been defined").
fn root_cause(e: &wasmtime::Error) -> String {
    format!("{e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_modules_from_components() {
        assert_eq!(kind(b"\0asm\x01\0\0\0"), Ok(Kind::Module));
        assert_eq!(kind(b"\0asm\x0d\0\x01\0"), Ok(Kind::Component));
        assert!(kind(b"\x7fELF\x02\x01\x01\0").is_err_and(|e| e.contains("magic")));
        assert!(kind(b"\0asm").is_err_and(|e| e.contains("too short")));
        assert!(kind(b"\0asm\x02\0\0\0").is_err_and(|e| e.contains("version")));
    }
}
