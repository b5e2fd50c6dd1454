//! The `echo` plugin: returns its input unchanged.
//!
//! It does nothing else on purpose: it is the baseline that measures what running a step
//! costs when the step itself costs nothing.

use serde_json::Value;
use weft_sdk::{Context, Task, TaskError};

/// Returns its input unchanged.
#[derive(Debug)]
pub struct Echo;

impl Task for Echo {
    type Input = Value;
    type Output = Value;

    fn run(input: Value, _ctx: &Context) -> Result<Value, TaskError> {
        Ok(input)
    }
}

weft_sdk::export_task!(Echo);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weft_sdk::testing::{FakeHost, describe, run_json};

    use super::*;

    #[test]
    fn returns_its_input_unchanged() {
        let ctx = FakeHost::new().context();
        let input = json!({ "a": [1, 2.5, "three", null], "b": { "c": true } });
        assert_eq!(Echo::run(input.clone(), &ctx).unwrap(), input);
        assert_eq!(run_json::<Echo>(&ctx, "[1,2]").unwrap(), "[1,2]");
    }

    #[test]
    fn describes_itself_from_its_package() {
        let info = describe::<Echo>(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            env!("CARGO_PKG_DESCRIPTION"),
        );
        assert_eq!(info.name, "echo");
        assert_eq!(info.description, "Returns its input unchanged");
        assert_eq!(info.capabilities, weft_sdk::Capabilities::NONE);
    }
}
