//! Host bindings of the `weft:plugin/task` world, generated from `wit/`.
//!
//! The WASI interfaces the world imports are mapped onto the implementations of
//! `wasmtime-wasi` and `wasmtime-wasi-http`, so that one linker serves both.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "weft:plugin/task",
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
    },
});

pub use weft::plugin::{kv, log, types};
