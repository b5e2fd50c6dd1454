//! `weft serve`: flags and environment to a validated [`DaemonConfig`], then the daemon until
//! SIGTERM or Ctrl-C. Its one line on stdout says where it listens:
//! `weft: listening on http://ADDR` (scripts and tests read the port from it).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use weft::access::ADMIN_TOKEN_ENV;
use weft::daemon::{Daemon, DaemonConfig, RawConfig};

/// Arguments of `weft serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory of the store, compiled plugins and tokens; created if missing.
    #[arg(long, env = "WEFT_DATA_DIR", default_value = "weft-data")]
    data_dir: PathBuf,
    /// Address to listen on, `IP:PORT`; port 0 picks a free one.
    #[arg(long, env = "WEFT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// TOML file with the other settings (workers, limits, drain grace, auto-approval).
    #[arg(long, env = "WEFT_CONFIG")]
    config: Option<PathBuf>,
    /// Approve every uploaded plugin with the capabilities it requests. For local
    /// development only; overrides the config file.
    #[arg(long)]
    auto_approve: bool,
}

/// Runs `weft serve`.
pub async fn run(args: ServeArgs) -> Result<i32> {
    let mut raw = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    if args.auto_approve {
        raw.auto_approve = Some(true);
    }
    let admin_token = std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty());
    let config = DaemonConfig::new(args.data_dir, &args.listen, raw, admin_token)?;
    let daemon = Daemon::start(config).await?;
    println!("weft: listening on http://{}", daemon.local_addr());
    // Whoever reads the address may be waiting on a pipe.
    std::io::stdout().flush()?;
    daemon.run_until_signal().await?;
    Ok(0)
}
