//! The `cefwire` binary: arguments in, exit code out. All work is done by
//! the library (`cefwire::cli::run`).

use cefwire::exit::Status;
use std::io::ErrorKind;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cefwire::cli::run(std::env::args_os()) {
        Ok(status) => status.into(),
        Err(err) => {
            // A closed pipe (`cefwire convert … | head`) is not a failure.
            if err
                .chain()
                .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == ErrorKind::BrokenPipe))
            {
                return Status::Success.into();
            }
            eprintln!("cefwire: error: {err:#}");
            if err.downcast_ref::<cefwire::cli::UsageError>().is_some() {
                Status::Usage.into()
            } else {
                Status::Failure.into()
            }
        }
    }
}
