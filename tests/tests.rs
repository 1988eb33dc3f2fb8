//! Integration tests: one binary, one module per area (ripgrep's layout).

mod convert_cli;
mod golden;
mod roundtrip;
mod status_cli;
mod util;
