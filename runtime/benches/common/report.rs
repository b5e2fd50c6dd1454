//! What every benchmark prints and writes: a table with one row per measure (its baseline and
//! ratio when it has one), and the same rows as JSON in `<name>.json` under `WEFT_BENCH_OUT`
//! (by default `target/bench` of the workspace).

use std::path::{Path, PathBuf};

/// One measure.
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// The baseline measured in the same run, in the same unit.
    pub baseline: Option<f64>,
    pub note: &'static str,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.baseline.map(|b| self.value / b)
    }
}

/// Prints the rows as a table.
pub fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(7);
    println!(
        "{:<width$} {:>12} {:>9} {:>12} {:>8}  note",
        "measure", "value", "unit", "baseline", "ratio"
    );
    for r in rows {
        let baseline = r.baseline.map(|b| format!("{b:.2}")).unwrap_or_default();
        let ratio = r.ratio().map(|x| format!("{x:.2}x")).unwrap_or_default();
        println!(
            "{:<width$} {:>12.2} {:>9} {:>12} {:>8}  {}",
            r.name, r.value, r.unit, baseline, ratio, r.note
        );
    }
}

/// Writes the rows to `<name>.json`.
pub fn write_json(rows: &[Row], name: &str) {
    let dir = std::env::var_os("WEFT_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let json: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "measure": r.name, "value": r.value, "unit": r.unit,
                "baseline": r.baseline, "ratio": r.ratio(), "note": r.note,
            })
        })
        .collect();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nwrote {}", path.display());
}

/// The workspace: the nearest folder above the benchmark's package with a `Cargo.lock`.
fn workspace_root() -> PathBuf {
    // Read at run time: a binary built from another checkout may share the target folder.
    let package = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    Path::new(&package)
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .unwrap_or(Path::new(&package))
        .to_path_buf()
}
