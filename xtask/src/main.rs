//! Weft's development commands, run as `cargo xtask <command>`.
//!
//! - `run`: builds the plugins and the daemon, starts the example services and the daemon,
//!   pushes the plugins, applies the example workflows and follows one example job
//!   ([`mod@run`]).
//! - `build-plugins`: builds the first-party plugins (`plugins/<name>`, package
//!   `weft-plugin-<name>`) and the example plugins (`examples/<name>-plugin`, package
//!   `weft-example-<name>`) into `target/plugins/<name>.wasm`, and the test fixtures into
//!   `target/test-plugins/<name>.wasm`.
//! - `test`: `build-plugins`, then every test of the workspace.
//! - `bench sandbox`: the sandbox benchmark (release build), printing a table and writing JSON.
//!
//! It shells out to `cargo` and `rustup` only; it never links the runtime, so it builds in
//! seconds on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod mock_services;
mod run;

const GUEST_TARGET: &str = "wasm32-wasip2";
const GUEST_PROFILE: &str = "plugin";

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("build-plugins") => build_plugins(&root).map(drop),
        Some("test") => test(&root, &args[1..]),
        Some("run") => run_daemon(&root, &args[1..]),
        Some("bench") => bench(&root, &args[1..]),
        _ => bail!(
            "usage: cargo xtask <run | build-plugins | test [cargo test args] | bench [sandbox | engine | api]>"
        ),
    }
}

fn workspace_root() -> PathBuf {
    // `cargo run` says where xtask's manifest is at run time. The path compiled in is only a
    // fallback: a binary built from another clone sharing the target dir would point there.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its name when it fails.
fn sh(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

/// The directory cargo builds into (honours `CARGO_TARGET_DIR`).
fn cargo_target_dir(root: &Path) -> Result<PathBuf> {
    let out = cargo(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let key = "\"target_directory\":\"";
    let start = text
        .find(key)
        .context("cargo metadata has no target_directory")?
        + key.len();
    let end = start
        + text[start..]
            .find('"')
            .context("malformed cargo metadata")?;
    Ok(PathBuf::from(text[start..end].replace("\\\\", "\\")))
}

fn ensure_guest_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (is rustup installed?)")?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == GUEST_TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the {GUEST_TARGET} target");
    sh(Command::new("rustup").args(["target", "add", GUEST_TARGET]))
}

/// Package directories under `dir` (each holding a Cargo.toml), sorted.
fn packages_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file() {
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Names of the example plugins: `examples/<name>-plugin` directories, sorted.
fn example_plugins(examples: &Path) -> Result<Vec<String>> {
    Ok(packages_in(examples)?
        .into_iter()
        .filter_map(|dir| dir.strip_suffix("-plugin").map(str::to_owned))
        .collect())
}

/// Where the built plugins go.
struct PluginDirs {
    plugins: PathBuf,
    fixtures: PathBuf,
}

fn build_plugins(root: &Path) -> Result<PluginDirs> {
    ensure_guest_target()?;
    let plugins = packages_in(&root.join("plugins"))?;
    let examples = example_plugins(&root.join("examples"))?;
    let fixtures = packages_in(&root.join("tests/fixtures"))?;
    let mut cmd = cargo(root);
    cmd.args([
        "build",
        "--target",
        GUEST_TARGET,
        "--profile",
        GUEST_PROFILE,
    ]);
    for name in &plugins {
        cmd.args(["-p", &format!("weft-plugin-{name}")]);
    }
    for name in &examples {
        cmd.args(["-p", &format!("weft-example-{name}")]);
    }
    for name in &fixtures {
        cmd.args(["-p", &format!("weft-fixture-{name}")]);
    }
    sh(&mut cmd)?;
    let built = cargo_target_dir(root)?
        .join(GUEST_TARGET)
        .join(GUEST_PROFILE);
    let dirs = PluginDirs {
        plugins: root.join("target/plugins"),
        fixtures: root.join("target/test-plugins"),
    };
    copy_components(&built, "weft_plugin_", &plugins, &dirs.plugins)?;
    copy_components(&built, "weft_example_", &examples, &dirs.plugins)?;
    copy_components(&built, "weft_fixture_", &fixtures, &dirs.fixtures)?;
    eprintln!(
        "xtask: {} plugins in {}, {} fixtures in {}",
        plugins.len() + examples.len(),
        dirs.plugins.display(),
        fixtures.len(),
        dirs.fixtures.display()
    );
    Ok(dirs)
}

fn copy_components(built: &Path, prefix: &str, names: &[String], to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for name in names {
        let from = built.join(format!("{prefix}{}.wasm", name.replace('-', "_")));
        let dest = to.join(format!("{name}.wasm"));
        std::fs::copy(&from, &dest)
            .with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
    }
    Ok(())
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    let dirs = build_plugins(root)?;
    // The end-to-end tests run the real binary; `cargo test` alone does not build it where
    // they can find it.
    sh(cargo(root).args(["build", "--package", "weft", "--bin", "weft"]))?;
    let weft_bin = cargo_target_dir(root)?.join("debug").join("weft");
    let mut cmd = cargo(root);
    cmd.args(["test", "--workspace"])
        .args(extra)
        .env("WEFT_PLUGIN_DIR", &dirs.plugins)
        .env("WEFT_FIXTURE_DIR", &dirs.fixtures)
        .env("WEFT_BIN", &weft_bin);
    sh(&mut cmd)
}

fn run_daemon(root: &Path, extra: &[String]) -> Result<()> {
    let dirs = build_plugins(root)?;
    run::run(root, &dirs, extra)
}

fn bench(root: &Path, extra: &[String]) -> Result<()> {
    let dirs = build_plugins(root)?;
    let which = extra.first().map(String::as_str).unwrap_or("sandbox");
    match which {
        "sandbox" => {
            let mut cmd = cargo(root);
            cmd.args(["bench", "--package", "weft-sandbox", "--bench", "sandbox"])
                .env("WEFT_PLUGIN_DIR", &dirs.plugins)
                .env("WEFT_FIXTURE_DIR", &dirs.fixtures)
                .env("WEFT_BENCH_OUT", root.join("target/bench"));
            sh(&mut cmd)
        }
        "engine" | "api" => {
            let mut cmd = cargo(root);
            cmd.args(["bench", "--package", "weft", "--bench", which])
                .env("WEFT_PLUGIN_DIR", &dirs.plugins)
                .env("WEFT_FIXTURE_DIR", &dirs.fixtures)
                .env("WEFT_BENCH_OUT", root.join("target/bench"));
            sh(&mut cmd)
        }
        other => bail!("unknown benchmark {other:?}: expected `sandbox`, `engine` or `api`"),
    }
}
