//! Unit tests of the `transform` plugin against the SDK's fake host.

use serde_json::{Value, json};
use weft_sdk::testing::{FakeHost, describe, run_json};

use super::*;

fn transform(query: &str, data: Value) -> Result<Value, TaskError> {
    let ctx = FakeHost::new().context();
    Transform::run(
        Input {
            query: query.to_owned(),
            data,
        },
        &ctx,
    )
}

#[test]
fn one_result_is_returned_as_it_is() {
    let data = json!({ "items": [{ "id": 1, "name": "a", "x": 0 }, { "id": 2, "name": "b" }] });
    assert_eq!(
        transform(".items | map({id, name})", data.clone()).unwrap(),
        json!([{ "id": 1, "name": "a" }, { "id": 2, "name": "b" }])
    );
    assert_eq!(transform(".items[0].name", data).unwrap(), json!("a"));
}

#[test]
fn several_results_become_an_array_and_none_becomes_null() {
    assert_eq!(
        transform(".[] | . * 2", json!([1, 2, 3])).unwrap(),
        json!([2, 4, 6])
    );
    assert_eq!(transform("empty", json!(1)).unwrap(), Value::Null);
}

#[test]
fn the_standard_library_is_available() {
    let data = json!({ "b": 2, "a": 1 });
    assert_eq!(transform("keys", data.clone()).unwrap(), json!(["a", "b"]));
    assert_eq!(
        transform("to_entries | map(.value) | add", data).unwrap(),
        json!(3)
    );
    assert_eq!(
        transform(r#"ascii_upcase | test("AB")"#, json!("abc")).unwrap(),
        json!(true)
    );
    assert_eq!(
        transform(r#"split(",") | length"#, json!("a,b,c")).unwrap(),
        json!(3)
    );
}

#[test]
fn invalid_queries_are_permanent_and_say_where() {
    let error = transform(".items | map(.id", Value::Null).unwrap_err();
    assert_eq!(error.code(), INVALID_QUERY);
    assert!(!error.is_retryable());
    assert!(
        error.message().contains("closing parenthesis"),
        "{}",
        error.message()
    );

    let error = transform("if . then 1", Value::Null).unwrap_err();
    assert_eq!(error.code(), INVALID_QUERY);
    assert!(
        error.message().contains("else or end"),
        "{}",
        error.message()
    );

    let error = transform("frobnicate(1)", Value::Null).unwrap_err();
    assert_eq!(error.code(), INVALID_QUERY);
    assert!(
        error.message().contains("undefined filter `frobnicate/1`"),
        "{}",
        error.message()
    );
}

#[test]
fn runtime_errors_are_query_failed() {
    let error = transform(r#"error("boom")"#, Value::Null).unwrap_err();
    assert_eq!(error.code(), QUERY_FAILED);
    assert!(error.message().contains("boom"), "{}", error.message());

    let error = transform(".a", json!([1])).unwrap_err();
    assert_eq!(error.code(), QUERY_FAILED);
}

#[test]
fn a_missing_query_is_invalid_input() {
    let ctx = FakeHost::new().context();
    let error = run_json::<Transform>(&ctx, r#"{"data": 1}"#).unwrap_err();
    assert_eq!(error.code(), "invalid-input");
    assert!(error.message().contains("query"), "{}", error.message());
    assert_eq!(
        run_json::<Transform>(&ctx, r#"{"query": "."}"#).unwrap(),
        "null"
    );
}

#[test]
fn describes_which_shape_the_output_has() {
    let info = describe::<Transform>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION"),
    );
    assert_eq!(info.name, "transform");
    assert!(info.description.contains("array"));
}
