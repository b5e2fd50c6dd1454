//! A plugin made without the SDK: a core module written in WebAssembly text, given the
//! `weft:plugin` world as metadata and turned into a component in-process with
//! `wit-component` (what `wasm-tools component embed` + `component new` do). This is how
//! plugins from other toolchains arrive, and it goes through the same load/validate/run path.

use serde_json::json;
use weft_sandbox::{Grants, LoadError, Outcome, ValidationError};

use crate::support::{run, sandbox};

/// An echo plugin in the canonical ABI, by hand: a bump allocator, `describe` returning a
/// `plugin-info` record laid out in memory, and `run` returning `ok(input)`.
const ECHO_WAT: &str = r#"
(module
  (memory (export "memory") 1)
  (global $next (mut i32) (i32.const 4096))
  (data (i32.const 16) "wat-echo")       ;; name, 8 bytes
  (data (i32.const 32) "1.0.0")          ;; version, 5 bytes
  (data (i32.const 48) "echo in text")   ;; description, 12 bytes
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    ;; align the bump pointer, hand out new_size bytes
    (local.set $ptr
      (i32.and
        (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
    (global.set $next (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  ;; plugin-info at 1024: name, version, description (ptr, len each), two none options,
  ;; an empty list of hosts and kv = false
  (func (export "describe") (result i32)
    (i32.store (i32.const 1024) (i32.const 16))
    (i32.store (i32.const 1028) (i32.const 8))
    (i32.store (i32.const 1032) (i32.const 32))
    (i32.store (i32.const 1036) (i32.const 5))
    (i32.store (i32.const 1040) (i32.const 48))
    (i32.store (i32.const 1044) (i32.const 12))
    (i32.store8 (i32.const 1048) (i32.const 0))
    (i32.store8 (i32.const 1060) (i32.const 0))
    (i32.store (i32.const 1072) (i32.const 0))
    (i32.store (i32.const 1076) (i32.const 0))
    (i32.store8 (i32.const 1080) (i32.const 0))
    (i32.const 1024))
  ;; run(input, ctx) -> result<string, task-error> at 2048: tag 0 (ok), then the input
  (func (export "run")
    (param $in i32) (param $len i32)
    (param i32 i32 i32 i32 i32 i32 i32)
    (result i32)
    (i32.store8 (i32.const 2048) (i32.const 0))
    (i32.store (i32.const 2052) (local.get $in))
    (i32.store (i32.const 2056) (local.get $len))
    (i32.const 2048))
)
"#;

fn wit_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .parent()
    .unwrap()
    .join("wit")
}

/// Turns a core module into a `weft:plugin/task` component.
fn componentize(wat: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).expect("valid text");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(wit_dir()).expect("wit parses");
    let world = resolve
        .select_world(&[pkg], Some("task"))
        .expect("task world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module")
        .validate(true)
        .encode()
        .expect("encode")
}

#[tokio::test]
async fn a_component_built_from_text_loads_and_runs() {
    let sandbox = sandbox();
    let plugin = sandbox.load(&componentize(ECHO_WAT)).await.expect("loads");
    assert_eq!(plugin.info().name, "wat-echo");
    assert_eq!(plugin.info().version.to_string(), "1.0.0");
    assert_eq!(plugin.info().description, "echo in text");

    let input = json!({"device": "sw-17", "ports": [1, 2]});
    let report = run(&sandbox, &plugin, &Grants::default(), input.clone()).await;
    assert_eq!(report.outcome, Outcome::Succeeded { output: input });
    assert!(report.fuel_consumed > 0);
}

#[tokio::test]
async fn a_core_module_is_refused_with_a_hint() {
    let sandbox = sandbox();
    let module = wat::parse_str("(module)").unwrap();
    let err = sandbox.load(&module).await.unwrap_err();
    assert_eq!(err, LoadError::Invalid(ValidationError::CoreModule));
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[tokio::test]
async fn garbage_is_refused() {
    let sandbox = sandbox();
    let err = sandbox.load(b"#!/bin/sh\nrm -rf /\n").await.unwrap_err();
    assert_eq!(err, LoadError::Invalid(ValidationError::NotWasm));
}

#[tokio::test]
async fn an_import_outside_wasi_and_weft_is_named() {
    let sandbox = sandbox();
    let component = wat::parse_str(
        r#"(component
             (import "acme:evil/backdoor@1.0.0" (instance))
           )"#,
    )
    .unwrap();
    let err = sandbox.load(&component).await.unwrap_err();
    assert_eq!(
        err,
        LoadError::Invalid(ValidationError::ForbiddenImport {
            import: "acme:evil/backdoor@1.0.0".into()
        })
    );
}

#[tokio::test]
async fn a_component_without_the_task_exports_is_refused() {
    let sandbox = sandbox();
    let component = wat::parse_str("(component)").unwrap();
    let err = sandbox.load(&component).await.unwrap_err();
    assert!(
        matches!(err, LoadError::Invalid(ValidationError::NotATask(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_component_over_the_size_limit_is_refused_before_parsing() {
    let sandbox = crate::support::sandbox_with(weft_sandbox::SandboxConfig {
        max_component_bytes: 1024,
        ..Default::default()
    });
    let mut big = b"\0asm\x0d\0\x01\0".to_vec();
    big.resize(2048, 0);
    let err = sandbox.load(&big).await.unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Invalid(ValidationError::TooLarge {
                size_bytes: 2048,
                limit_bytes: 1024
            })
        ),
        "{err:?}"
    );
}
