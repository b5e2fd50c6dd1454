//! Admission checks on a component, before and after it is compiled.
//!
//! Before compiling: the bytes are within the size limit and start like a component (a core
//! module or random bytes are refused with a message that says so). After compiling: every
//! import is either `weft:plugin` or a standard WASI 0.2 interface. Components from other
//! toolchains import `wasi:filesystem`, `wasi:sockets` and all of `wasi:cli` even when they
//! never use them, so those are accepted and denied at run time (no preopens, no sockets);
//! anything else is refused, naming the first offending import.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Why a component was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The component is larger than the limit.
    #[error("component is {size_bytes} bytes, the limit is {limit_bytes}")]
    TooLarge {
        /// Its size.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// A core WebAssembly module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: build for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// Not WebAssembly at all.
    #[error("not a WebAssembly component (the file does not start with the component header)")]
    NotWasm,
    /// The component failed to parse or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// An import outside WASI 0.2 and `weft:plugin`.
    #[error(
        "import {import:?} is not allowed: plugins may import only `weft:plugin` and WASI 0.2 interfaces"
    )]
    ForbiddenImport {
        /// The first forbidden import.
        import: String,
    },
    /// The component does not export the `weft:plugin/task` world.
    #[error("component does not export the weft:plugin task world: {0}")]
    NotATask(String),
}

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Version and layer of a component binary (the layer 1 marks a component).
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
const CORE_MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// WASI packages whose 0.2 interfaces a component may import.
const WASI_PACKAGES: &[&str] = &[
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:http",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
];

/// Checks size and header, before anything parses the bytes.
pub fn check_bytes(bytes: &[u8], limit_bytes: usize) -> Result<(), ValidationError> {
    if bytes.len() > limit_bytes {
        return Err(ValidationError::TooLarge {
            size_bytes: bytes.len(),
            limit_bytes,
        });
    }
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(ValidationError::NotWasm);
    }
    match bytes[4..8].try_into() {
        Ok(COMPONENT_VERSION) => Ok(()),
        Ok(CORE_MODULE_VERSION) => Err(ValidationError::CoreModule),
        _ => Err(ValidationError::NotWasm),
    }
}

/// Whether an import name (`package:name/interface@version`) is allowed.
pub fn import_allowed(name: &str) -> bool {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    let Some((package, _interface)) = path.split_once('/') else {
        return false;
    };
    if package == "weft:plugin" {
        return true;
    }
    WASI_PACKAGES.contains(&package) && version.is_some_and(|v| v.starts_with("0.2."))
}

/// Checks every import of a compiled component.
pub fn check_imports(component: &Component, engine: &Engine) -> Result<(), ValidationError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if !import_allowed(name) {
            return Err(ValidationError::ForbiddenImport {
                import: name.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_wasi_02_and_weft_imports_only() {
        for ok in [
            "wasi:cli/environment@0.2.0",
            "wasi:filesystem/preopens@0.2.3",
            "wasi:http/outgoing-handler@0.2.12",
            "weft:plugin/log@0.1.0",
        ] {
            assert!(import_allowed(ok), "{ok} refused");
        }
        for bad in [
            "wasi:cli/environment@0.3.0",
            "wasi:keyvalue/store@0.2.0",
            "acme:evil/backdoor@1.0.0",
            "wasi:io/streams",
            "env",
        ] {
            assert!(!import_allowed(bad), "{bad} accepted");
        }
    }

    #[test]
    fn tells_modules_and_garbage_from_components() {
        let module = b"\0asm\x01\0\0\0";
        assert_eq!(check_bytes(module, 100), Err(ValidationError::CoreModule));
        assert_eq!(
            check_bytes(b"hello world", 100),
            Err(ValidationError::NotWasm)
        );
        let component = b"\0asm\x0d\0\x01\0";
        assert_eq!(check_bytes(component, 100), Ok(()));
        assert!(matches!(
            check_bytes(component, 4),
            Err(ValidationError::TooLarge { .. })
        ));
    }
}
