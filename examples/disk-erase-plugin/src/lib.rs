//! The `disk-erase` example plugin: simulates erasing the disks of one machine, for the
//! `disk-erase` example workflow that fans it out over many machines.
//!
//! Nothing is erased: the plugin logs the passes it would make over each disk and returns
//! what it "erased". The disk layout is derived from the machine's name, so a run is
//! deterministic. A machine whose name contains `fail` fails with a non-retryable
//! `erase-failed` error, so that the workflow's failure budget (`max_failures`) can be seen
//! at work.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, Task, TaskError};

/// Code of the error of a machine whose erase fails.
pub const ERASE_FAILED: &str = "erase-failed";

/// Overwrite passes made over each disk.
const PASSES: u32 = 3;

/// Size of one simulated disk, in bytes (1 TiB).
const DISK_BYTES: u64 = 1 << 40;

/// Simulates erasing one machine's disks.
#[derive(Debug)]
pub struct DiskErase;

/// The machine to erase.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The machine's name.
    pub machine: String,
    /// The site the machine is in.
    pub site: String,
}

/// What was erased.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Output {
    /// The machine's name.
    pub machine: String,
    /// The site the machine is in.
    pub site: String,
    /// Always true: a machine that could not be erased fails the task instead.
    pub erased: bool,
    /// Bytes erased, over every disk.
    pub bytes: u64,
}

/// Number of disks of `machine`: from 1 to 4, derived from its name.
fn disks_of(machine: &str) -> u64 {
    let sum: u64 = machine.bytes().map(u64::from).sum();
    sum % 4 + 1
}

impl Task for DiskErase {
    type Input = Input;
    type Output = Output;

    // The package is named `weft-example-disk-erase`; the plugin is `disk-erase`.
    const NAME: Option<&'static str> = Some("disk-erase");

    fn run(input: Input, ctx: &Context) -> Result<Output, TaskError> {
        if input.machine.trim().is_empty() {
            return Err(TaskError::invalid_input("`machine` must not be empty"));
        }
        let disks = disks_of(&input.machine);
        ctx.log().info(format_args!(
            "erasing {} at {}: {disks} disks, {PASSES} passes each",
            input.machine, input.site
        ));
        for disk in 0..disks {
            for pass in 1..=PASSES {
                ctx.log().debug(format_args!(
                    "{}: disk {disk} pass {pass}/{PASSES}",
                    input.machine
                ));
            }
            if input.machine.contains("fail") {
                ctx.log().error(format_args!(
                    "{}: disk {disk} did not verify after erase",
                    input.machine
                ));
                return Err(TaskError::new(
                    ERASE_FAILED,
                    format!("disk {disk} of {} did not verify", input.machine),
                ));
            }
        }
        let bytes = disks * DISK_BYTES;
        ctx.log()
            .info(format_args!("{} erased: {bytes} bytes", input.machine));
        Ok(Output {
            machine: input.machine,
            site: input.site,
            erased: true,
            bytes,
        })
    }
}

weft_sdk::export_task!(DiskErase);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weft_sdk::testing::{FakeHost, describe, run_json};

    use super::*;

    fn input(machine: &str) -> Input {
        Input {
            machine: machine.to_owned(),
            site: "ams1".to_owned(),
        }
    }

    #[test]
    fn erases_a_machine_and_logs_its_progress() {
        let host = FakeHost::new();
        let output = DiskErase::run(input("db-ams-01"), &host.context()).unwrap();
        assert!(output.erased);
        assert_eq!(output.machine, "db-ams-01");
        assert_eq!(output.site, "ams1");
        assert_eq!(output.bytes, disks_of("db-ams-01") * DISK_BYTES);
        let logs = host.logs();
        assert!(logs[0].message.starts_with("erasing db-ams-01 at ams1"));
        assert_eq!(
            logs.last().unwrap().message,
            format!("db-ams-01 erased: {} bytes", output.bytes)
        );
    }

    #[test]
    fn is_deterministic() {
        let ctx = FakeHost::new().context();
        let first = DiskErase::run(input("web-fra-07"), &ctx).unwrap();
        let second = DiskErase::run(input("web-fra-07"), &ctx).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn a_machine_named_fail_fails_without_retry() {
        let host = FakeHost::new();
        let error = DiskErase::run(input("db-fail-02"), &host.context()).unwrap_err();
        assert_eq!(error.code(), ERASE_FAILED);
        assert!(!error.is_retryable());
        assert!(
            host.logs()
                .iter()
                .any(|l| l.message.contains("did not verify"))
        );
    }

    #[test]
    fn rejects_bad_input_naming_the_field() {
        let ctx = FakeHost::new().context();
        let error = run_json::<DiskErase>(&ctx, r#"{"machine": "a"}"#).unwrap_err();
        assert_eq!(error.code(), "invalid-input");
        assert!(error.message().contains("site"), "{}", error.message());
        let output =
            run_json::<DiskErase>(&ctx, &json!({"machine": "a", "site": "b"}).to_string()).unwrap();
        let output: serde_json::Value = serde_json::from_str(&output).unwrap();
        assert_eq!(output["erased"], true);
    }

    #[test]
    fn describes_itself_as_disk_erase() {
        let info = describe::<DiskErase>(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        );
        assert_eq!(info.name, "disk-erase");
        assert_eq!(info.version, "0.1.0");
    }
}
