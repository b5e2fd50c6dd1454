//! The `weft` binary: the daemon and the command-line interface in one executable.
//!
//! `main` runs the command line and exits with the code it returns; turning errors into
//! messages and exit codes happens in one place, [`cli::main`].

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
