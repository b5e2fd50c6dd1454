//! The component's two exports, `describe` and `run`, for any [`Task`]: what
//! [`export_task!`](crate::export_task) expands to calls these, converting between the WIT
//! records and the SDK's own types.

use super::WasiBackend;
use super::bindings::weft::plugin::types as wit;
use crate::task::Package;
use crate::{Context, PluginInfo, Task, TaskError};

/// The `describe` export.
pub fn describe<T: Task>(package: Package) -> wit::PluginInfo {
    let info = PluginInfo::of::<T>(&package);
    wit::PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        input_schema: Some(info.input_schema.to_string()),
        output_schema: Some(info.output_schema.to_string()),
        capabilities: wit::Capabilities {
            http_hosts: info
                .capabilities
                .http_hosts()
                .iter()
                .map(|host| (*host).to_owned())
                .collect(),
            kv: info.capabilities.kv(),
        },
    }
}

/// The `run` export.
pub fn run<T: Task>(input: String, step: wit::StepContext) -> Result<String, wit::TaskError> {
    let ctx = Context::new(
        step.job_id,
        step.workflow,
        step.step_id,
        step.attempt,
        WasiBackend,
    );
    crate::dispatch::run_json::<T>(&input, &ctx).map_err(|error| task_error(&error))
}

fn task_error(error: &TaskError) -> wit::TaskError {
    wit::TaskError {
        code: error.code().to_owned(),
        message: error.message().to_owned(),
        retryable: error.is_retryable(),
        details: error.details().map(ToString::to_string),
    }
}
