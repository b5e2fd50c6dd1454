//! The `weft` binary: the daemon and the command-line interface in one executable.
//!
//! `main` parses the arguments, runs the command, and turns an error into a message on
//! stderr and a non-zero exit code, in one place.

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
