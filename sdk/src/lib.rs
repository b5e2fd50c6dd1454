//! Write Weft plugins in Rust.
//!
//! A Weft plugin is a WebAssembly component that runs one kind of workflow step. With this
//! SDK it is one type implementing [`Task`], with serde-typed input and output, exported
//! with [`export_task!`]:
//!
//! ```
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use weft_sdk::{Context, Task, TaskError};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input {
//!     name: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Output {
//!     greeting: String,
//! }
//!
//! struct Greet;
//!
//! impl Task for Greet {
//!     type Input = Input;
//!     type Output = Output;
//!
//!     fn run(input: Input, ctx: &Context) -> Result<Output, TaskError> {
//!         ctx.log().info(format_args!("greeting {}", input.name));
//!         Ok(Output { greeting: format!("hello, {}", input.name) })
//!     }
//! }
//!
//! weft_sdk::export_task!(Greet);
//! ```
//!
//! The plugin crate is a `cdylib`, plus an `rlib` so that its tests can call it, built with
//! `cargo build --target wasm32-wasip2`, which emits the component directly:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! weft-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! schemars = "1" # derives the JSON Schemas that `describe` publishes
//! ```
//!
//! # What the SDK does for the plugin
//!
//! - `describe`: the name and version come from the plugin crate's `Cargo.toml` (a
//!   `weft-plugin-` prefix is dropped from the name), the description from
//!   [`Task::DESCRIPTION`] or the crate's `description`, the input and output JSON Schemas
//!   from the two types, and the requested [`Capabilities`] from [`Task::CAPABILITIES`].
//! - `run`: an input that does not decode is an `invalid-input` [`TaskError`] naming the
//!   offending field; the output is encoded as JSON.
//! - [`Context`] reaches the daemon's services: [`log`], [`kv`] and outbound [`http`].
//!
//! # Testing
//!
//! Outside WebAssembly, a [`Context`] talks to an in-memory fake instead of the daemon, so
//! `run` is unit-tested with plain `cargo test`; see [`testing`].

#![deny(missing_docs)]
// The docs link to `testing`, which only exists outside WebAssembly.
#![cfg_attr(target_arch = "wasm32", allow(rustdoc::broken_intra_doc_links))]

// Lets the generated bindings name this crate the same way from inside it as from the
// plugin crates where `export_task!` expands.
extern crate self as weft_sdk;

mod backend;
mod context;
mod dispatch;
mod error;
pub mod http;
pub mod kv;
pub mod log;
mod task;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use crate::context::Context;
pub use crate::error::{INVALID_INPUT, INVALID_OUTPUT, TaskError};
pub use crate::task::{Capabilities, PluginInfo, Task};

/// What [`export_task!`] expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::task::Package;

    #[cfg(target_arch = "wasm32")]
    pub use crate::backend::wasi::bindings::{
        self, Guest, export, weft::plugin::types::PluginInfo as WitPluginInfo,
        weft::plugin::types::StepContext as WitStepContext,
        weft::plugin::types::TaskError as WitTaskError,
    };
    #[cfg(target_arch = "wasm32")]
    pub use crate::backend::wasi::guest::{describe, run};
    #[cfg(target_arch = "wasm32")]
    pub use wit_bindgen;
}

/// Exports a [`Task`] as the plugin's `describe` and `run`.
///
/// Call it once in the plugin crate, with the path of the type implementing [`Task`]:
///
/// ```
/// # use weft_sdk::{Context, Task, TaskError};
/// # struct MyTask;
/// # impl Task for MyTask {
/// #     type Input = serde_json::Value;
/// #     type Output = serde_json::Value;
/// #     fn run(input: Self::Input, _ctx: &Context) -> Result<Self::Output, TaskError> { Ok(input) }
/// # }
/// weft_sdk::export_task!(MyTask);
/// ```
///
/// It captures the calling crate's Cargo metadata for `describe`. Outside WebAssembly it
/// only checks that the type implements [`Task`].
///
/// Anything but one type path is refused with a message saying what to write:
///
/// ```compile_fail
/// weft_sdk::export_task!();
/// ```
///
/// ```compile_fail
/// # struct A; struct B;
/// weft_sdk::export_task!(A, B);
/// ```
///
/// ```compile_fail
/// struct NotATask;
/// weft_sdk::export_task!(NotATask);
/// ```
#[macro_export]
macro_rules! export_task {
    () => {
        ::core::compile_error!(
            "`export_task!` needs the type that implements `weft_sdk::Task`: write `weft_sdk::export_task!(MyTask);`"
        );
    };
    ($task:path $(,)?) => {
        const _: () = {
            const fn assert_implements_task<T: $crate::Task>() {}
            assert_implements_task::<$task>();
        };

        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            struct WeftTaskExport;

            impl $crate::__private::Guest for WeftTaskExport {
                fn describe() -> $crate::__private::WitPluginInfo {
                    $crate::__private::describe::<$task>($crate::__private::Package {
                        name: ::core::env!("CARGO_PKG_NAME"),
                        version: ::core::env!("CARGO_PKG_VERSION"),
                        description: ::core::env!("CARGO_PKG_DESCRIPTION"),
                    })
                }

                fn run(
                    input: ::std::string::String,
                    ctx: $crate::__private::WitStepContext,
                ) -> ::core::result::Result<::std::string::String, $crate::__private::WitTaskError>
                {
                    $crate::__private::run::<$task>(input, ctx)
                }
            }

            $crate::__private::export!(WeftTaskExport with_types_in $crate::__private::bindings);
        };
    };
    ($($other:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "`export_task!` takes the path of one type that implements `weft_sdk::Task`, as in `weft_sdk::export_task!(MyTask);`, not `",
            ::core::stringify!($($other)*),
            "`"
        ));
    };
}
