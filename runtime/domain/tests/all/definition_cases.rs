//! Runs every definition case under `tests/cases/`.
//!
//! Each case is a definition (`name.json` or `name.yaml`) and its expectation `name.expected`:
//! for a valid definition, its normalized JSON; for an invalid one, the problems, one per line
//! as `path code: message`. Definitions are validated against the small catalogue below. Set
//! `WEFT_BLESS=1` to rewrite the expectations from the current results (then review the diff).

use std::fs;
use std::path::{Path, PathBuf};

use semver::Version;
use weft_domain::definition::{SourceFormat, WorkflowDefinition};
use weft_domain::id::{PluginDigest, PluginName};
use weft_domain::plugin_ref::CatalogueEntry;

fn entry(name: &str, version: &str, digest_byte: u8) -> CatalogueEntry {
    CatalogueEntry {
        name: PluginName::new(name).unwrap(),
        version: Version::parse(version).unwrap(),
        digest: PluginDigest::new(format!(
            "sha256:{}",
            format!("{digest_byte:02x}").repeat(32)
        ))
        .unwrap(),
    }
}

/// The plugins the cases may use: `http` 1.0.0 and 1.4.2, `disk-erase` 1.0.3, `echo` 0.1.0.
fn catalogue() -> Vec<CatalogueEntry> {
    vec![
        entry("http", "1.0.0", 0x01),
        entry("http", "1.4.2", 0x02),
        entry("disk-erase", "1.0.3", 0x03),
        entry("echo", "0.1.0", 0x04),
    ]
}

/// The text a case is expected to produce.
fn outcome(source: &str, format: SourceFormat) -> String {
    match WorkflowDefinition::validate_submission(source, format, &catalogue()) {
        Ok(definition) => {
            let normalized = serde_json::to_string_pretty(&definition).unwrap();
            // The normalized form must read back as the same definition.
            let reread: WorkflowDefinition = serde_json::from_str(&normalized).unwrap();
            assert_eq!(reread, definition, "normalized form does not round-trip");
            format!("{normalized}\n")
        }
        Err(problems) => problems
            .0
            .iter()
            .map(|problem| format!("{problem}\n"))
            .collect(),
    }
}

fn cases() -> Vec<(PathBuf, SourceFormat)> {
    let folder = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("tests/cases");
    let mut cases: Vec<(PathBuf, SourceFormat)> = fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let format = match path.extension()?.to_str()? {
                "json" => SourceFormat::Json,
                "yaml" | "yml" => SourceFormat::Yaml,
                _ => return None,
            };
            Some((path, format))
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

#[test]
fn definition_cases_match_their_expectations() {
    let bless = std::env::var_os("WEFT_BLESS").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(
        cases.len() >= 10,
        "expected the definition cases in tests/cases"
    );
    let mut failures = Vec::new();
    for (path, format) in cases {
        let actual = outcome(&fs::read_to_string(&path).unwrap(), format);
        let expected_path = path.with_extension("expected");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            )),
            Err(_) => failures.push(format!(
                "{}: missing {}\n--- actual\n{actual}",
                path.display(),
                expected_path.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
