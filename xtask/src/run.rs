//! `cargo xtask run`: a local Weft to play with. It starts the example services, runs
//! `weft serve` on the embedded store in `target/weft-data`, pushes and approves the bundled
//! plugins, applies the example workflows, follows one example job to its end in the
//! terminal, then keeps the daemon serving until Ctrl-C.
//!
//! Running it again with the same data directory is fine: re-pushing identical plugins and
//! re-applying identical definitions changes nothing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{PluginDirs, cargo, cargo_target_dir, sh};

/// The port the daemon prefers, the CLI's default; a free one is used when it is taken.
const PREFERRED_LISTEN: &str = "127.0.0.1:8080";
/// How long the daemon may take to start listening (opening the store, compiling plugins).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Exit code of `weft job start --follow` when the job did not succeed.
const EXIT_JOB_FAILED: i32 = 3;

/// The `weft serve` process; killed when dropped, so that an error leaves nothing running.
struct Daemon {
    child: Child,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

/// Runs `cargo xtask run`; `extra` goes to `weft serve`.
pub fn run(root: &Path, dirs: &PluginDirs, extra: &[String]) -> Result<()> {
    sh(cargo(root).args(["build", "--release", "--package", "weft"]))?;
    let weft = cargo_target_dir(root)?.join("release/weft");
    let services = crate::mock_services::start()?;
    eprintln!("xtask: example services on {services}");
    let data_dir = root.join("target/weft-data");
    let daemon = start_daemon(&weft, &data_dir, extra)?;
    let token = admin_token(&data_dir)?;
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(&weft);
        cmd.args(args)
            .env("WEFT_SERVER", &daemon.url)
            .env("WEFT_TOKEN", &token);
        cmd
    };

    let services_host = services.trim_start_matches("http://");
    for plugin in wasm_files(&dirs.plugins)? {
        let path = plugin.to_string_lossy();
        let mut args = vec!["plugin", "push", &path, "--approve"];
        if plugin.file_stem().is_some_and(|s| s == "http") {
            args.extend(["--allow-host", services_host]);
        }
        sh(cli(&args).stdout(Stdio::null())).with_context(|| {
            format!(
                "pushing {path} (if the plugin was rebuilt with changes but the same version, \
                 remove {} and run again)",
                data_dir.display()
            )
        })?;
    }
    sh(&mut cli(&["plugin", "ls"]))?;
    for workflow in json_files(&root.join("examples/workflows"))? {
        sh(&mut cli(&[
            "workflow",
            "apply",
            &workflow.to_string_lossy(),
        ]))?;
    }

    let input =
        format!(r#"{{"device_id": "sw-ams-17", "ticket": "CHG-1042", "services": "{services}"}}"#);
    eprintln!("\nxtask: weft job start decommission-device --input '{input}' --follow");
    let status = cli(&[
        "job",
        "start",
        "decommission-device",
        "--input",
        &input,
        "--follow",
    ])
    .status()
    .context("running weft job start")?;
    match status.code() {
        Some(0) => {}
        Some(EXIT_JOB_FAILED) => eprintln!("xtask: the example job did not succeed (see above)"),
        _ => bail!("weft job start failed with {status}"),
    }
    print_usage(&weft, &daemon.url, &token, &services);
    let mut daemon = daemon;
    let status = daemon.child.wait().context("waiting for the daemon")?;
    if !status.success() {
        bail!("weft serve exited with {status}");
    }
    Ok(())
}

/// Starts `weft serve` and waits until it says where it listens.
fn start_daemon(weft: &Path, data_dir: &Path, extra: &[String]) -> Result<Daemon> {
    // Probing leaves a short window in which another process could take the port; the
    // daemon then fails to start and says so, which is good enough for a local demo.
    let listen = if TcpListener::bind(PREFERRED_LISTEN).is_ok() {
        PREFERRED_LISTEN
    } else {
        eprintln!("xtask: {PREFERRED_LISTEN} is taken; the daemon picks a free port");
        "127.0.0.1:0"
    };
    let mut child = Command::new(weft)
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", weft.display()))?;
    let stdout = child.stdout.take().context("the daemon's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            eprintln!("{line}");
            if let Some(at) = line.find("listening on http://") {
                _ = tx.send(line[at + "listening on ".len()..].trim().to_owned());
            }
        }
    });
    let mut daemon = Daemon {
        child,
        url: String::new(),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(url) => {
                daemon.url = url;
                return Ok(daemon);
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                if let Some(status) = daemon.child.try_wait()? {
                    bail!("weft serve exited with {status} before listening");
                }
            }
            Err(_) => bail!("weft serve did not say where it listens"),
        }
    }
}

/// The admin token: `WEFT_ADMIN_TOKEN` when set, otherwise the one the daemon generated in
/// its data directory on its first start.
fn admin_token(data_dir: &Path) -> Result<String> {
    if let Ok(token) = std::env::var("WEFT_ADMIN_TOKEN") {
        return Ok(token);
    }
    let path = data_dir.join("admin.token");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the admin token in {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// Files with extension `ext` in `dir`, sorted.
fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>> {
    files_with_extension(dir, "wasm")
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    files_with_extension(dir, "json")
}

fn print_usage(weft: &Path, url: &str, token: &str, services: &str) {
    let bin_dir = weft.parent().unwrap_or(weft).display();
    eprintln!(
        r#"
Weft is serving on {url} (Ctrl-C stops it). In another terminal:

    export PATH="{bin_dir}:$PATH"
    export WEFT_SERVER={url}
    export WEFT_TOKEN={token}

    weft job ls
    weft job show JOB_ID
    weft job logs JOB_ID inventory
    weft job start host-maintenance --follow \
        --input '{{"host": "hv-fra-03", "services": "{services}"}}'
    weft job start disk-erase --follow --input '{{"services": "{services}", "machines": [
        {{"name": "db-ams-01", "site": "ams1"}}, {{"name": "db-ams-02", "site": "ams1"}},
        {{"name": "web-fra-01", "site": "fra1"}}, {{"name": "web-fra-fail-02", "site": "fra1"}},
        {{"name": "cache-par-01", "site": "par1"}}]}}'

A path containing "fail" is refused by the example services, and the disk-erase plugin fails
machines whose name contains "fail": try `"device_id": "sw-fail-01"` to see a job fail.
"#
    );
}
