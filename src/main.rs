//! The `authd` binary: parse arguments and hand over to [`authd::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    authd::cli::main()
}
