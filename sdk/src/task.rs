//! The [`Task`] trait a plugin implements, the [`Capabilities`] it requests, and how the SDK
//! turns both into the [`PluginInfo`] that `describe` returns.
//!
//! Everything here is plain data: nothing in this module talks to the host.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, TaskError};

/// Prefix that first-party plugin packages carry and plugin names do not: the package
/// `weft-plugin-http` describes itself as the plugin `http`.
const PLUGIN_PACKAGE_PREFIX: &str = "weft-plugin-";

/// One step kind: what a Weft plugin does.
///
/// A plugin crate has exactly one type implementing `Task`, exported with
/// [`export_task!`](crate::export_task). The daemon calls [`Task::run`] once per attempt of
/// every step that names the plugin, each time in a fresh sandbox.
///
/// The SDK decodes the step's JSON input into [`Task::Input`] (a decoding failure becomes an
/// `invalid-input` error naming the offending field) and encodes [`Task::Output`] as the
/// step's JSON output. The JSON Schemas of both types are published by `describe`.
///
/// ```
/// use schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
/// use weft_sdk::{Capabilities, Context, Task, TaskError};
///
/// #[derive(Deserialize, JsonSchema)]
/// struct Input {
///     counter: String,
/// }
///
/// #[derive(Serialize, JsonSchema)]
/// struct Output {
///     value: u64,
/// }
///
/// /// Increments a named counter kept in the key-value store.
/// struct Count;
///
/// impl Task for Count {
///     type Input = Input;
///     type Output = Output;
///
///     const DESCRIPTION: Option<&'static str> = Some("Increments a named counter");
///     const CAPABILITIES: Capabilities = Capabilities::NONE.with_kv();
///
///     fn run(input: Input, ctx: &Context) -> Result<Output, TaskError> {
///         let value = ctx.kv().get_json::<u64>(&input.counter)?.unwrap_or(0) + 1;
///         ctx.kv().set_json(&input.counter, &value)?;
///         Ok(Output { value })
///     }
/// }
/// ```
pub trait Task {
    /// The step's input, decoded from JSON.
    type Input: DeserializeOwned + JsonSchema;
    /// The step's output, encoded as JSON.
    type Output: Serialize + JsonSchema;

    /// Plugin name, when it should differ from the crate's package name (without its
    /// `weft-plugin-` prefix). Lowercase letters, digits and `-`, starting with a letter.
    const NAME: Option<&'static str> = None;

    /// One or two sentences about what the plugin does, when they should differ from the
    /// `description` in the crate's `Cargo.toml`.
    const DESCRIPTION: Option<&'static str> = None;

    /// What the plugin asks to be allowed to do; nothing by default. An operator grants
    /// capabilities when approving the plugin: requesting one is not receiving it.
    const CAPABILITIES: Capabilities = Capabilities::NONE;

    /// Runs one attempt of a step.
    ///
    /// Return a [`TaskError`] to fail the attempt on purpose; whether it is retried depends
    /// on [`TaskError::is_retryable`] and on the step's retry policy.
    fn run(input: Self::Input, ctx: &Context) -> Result<Self::Output, TaskError>;
}

/// Capabilities a plugin requests, built at compile time.
///
/// ```
/// use weft_sdk::Capabilities;
///
/// const CAPABILITIES: Capabilities = Capabilities::NONE
///     .with_kv()
///     .with_http_hosts(&["api.example.com", "*.example.org"]);
/// assert!(CAPABILITIES.kv());
/// assert_eq!(CAPABILITIES.http_hosts(), ["api.example.com", "*.example.org"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    http_hosts: &'static [&'static str],
    kv: bool,
}

impl Capabilities {
    /// Requests nothing: no HTTP host, no key-value store.
    pub const NONE: Self = Self {
        http_hosts: &[],
        kv: false,
    };

    /// Requests these HTTP hosts (optionally with `:port`; a leading `*.` matches any
    /// subdomain), replacing any hosts requested before.
    pub const fn with_http_hosts(self, hosts: &'static [&'static str]) -> Self {
        Self {
            http_hosts: hosts,
            ..self
        }
    }

    /// Requests the key-value store.
    pub const fn with_kv(self) -> Self {
        Self { kv: true, ..self }
    }

    /// The HTTP hosts requested.
    pub const fn http_hosts(&self) -> &'static [&'static str] {
        self.http_hosts
    }

    /// Whether the key-value store is requested.
    pub const fn kv(&self) -> bool {
        self.kv
    }
}

/// How a plugin describes itself: what `describe` returns, in the SDK's own types.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Plugin name: [`Task::NAME`], or the package name without its `weft-plugin-` prefix.
    pub name: String,
    /// Semantic version: the crate's package version.
    pub version: String,
    /// [`Task::DESCRIPTION`], or the crate's package description.
    pub description: String,
    /// JSON Schema of [`Task::Input`].
    pub input_schema: serde_json::Value,
    /// JSON Schema of [`Task::Output`].
    pub output_schema: serde_json::Value,
    /// [`Task::CAPABILITIES`].
    pub capabilities: Capabilities,
}

impl PluginInfo {
    /// Describes `T`, taking what the task does not say itself from the Cargo metadata of
    /// the plugin crate.
    pub(crate) fn of<T: Task>(package: &Package) -> Self {
        Self {
            name: T::NAME.map_or_else(|| plugin_name(package.name), str::to_owned),
            version: package.version.to_owned(),
            description: T::DESCRIPTION.unwrap_or(package.description).to_owned(),
            input_schema: schemars::schema_for!(T::Input).to_value(),
            output_schema: schemars::schema_for!(T::Output).to_value(),
            capabilities: T::CAPABILITIES,
        }
    }
}

/// Cargo metadata of the plugin crate, captured where [`export_task!`](crate::export_task)
/// expands so that it is the plugin's and not the SDK's.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// `CARGO_PKG_NAME`.
    pub name: &'static str,
    /// `CARGO_PKG_VERSION`.
    pub version: &'static str,
    /// `CARGO_PKG_DESCRIPTION`.
    pub description: &'static str,
}

/// Derives a plugin name from a package name: `weft-plugin-http` -> `http`,
/// `my_plugin` -> `my-plugin`.
fn plugin_name(package_name: &str) -> String {
    let name = package_name.replace('_', "-").to_ascii_lowercase();
    match name.strip_prefix(PLUGIN_PACKAGE_PREFIX) {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named;

    impl Task for Named {
        type Input = Vec<String>;
        type Output = u32;

        const NAME: Option<&'static str> = Some("renamed");
        const DESCRIPTION: Option<&'static str> = Some("Counts strings");
        const CAPABILITIES: Capabilities = Capabilities::NONE
            .with_http_hosts(&["api.example.com"])
            .with_kv();

        fn run(input: Vec<String>, _ctx: &Context) -> Result<u32, TaskError> {
            Ok(u32::try_from(input.len()).unwrap_or(u32::MAX))
        }
    }

    #[test]
    fn describes_a_task_with_its_overrides_and_schemas() {
        let package = Package {
            name: "weft-plugin-counter",
            version: "2.1.0",
            description: "From Cargo.toml",
        };
        let info = PluginInfo::of::<Named>(&package);
        assert_eq!(info.name, "renamed");
        assert_eq!(info.version, "2.1.0");
        assert_eq!(info.description, "Counts strings");
        assert_eq!(info.input_schema["type"], "array");
        assert_eq!(info.input_schema["items"]["type"], "string");
        assert_eq!(info.output_schema["type"], "integer");
        assert_eq!(info.capabilities.http_hosts(), ["api.example.com"]);
        assert!(info.capabilities.kv());
    }

    #[test]
    fn plugin_names_drop_the_first_party_prefix() {
        assert_eq!(plugin_name("weft-plugin-http"), "http");
        assert_eq!(plugin_name("weft_plugin_http"), "http");
        assert_eq!(plugin_name("acme-mailer"), "acme-mailer");
        assert_eq!(plugin_name("Acme_Mailer"), "acme-mailer");
        assert_eq!(plugin_name("weft-plugin-"), "weft-plugin-");
    }
}
