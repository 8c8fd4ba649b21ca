//! Prints which isolation modes this machine supports and, for each mode it
//! cannot use, why not and what to do.
//!
//! ```text
//! cargo run -p netns-test-examples --example doctor
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let diagnosis = netns_test_runtime::diagnose();
    println!("{diagnosis}");
    match netns_test_runtime::selected_mode() {
        Ok(mode) => {
            println!("mode netns tests will use: {mode}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!(
                "netns tests will fail here (or pass as skipped with NETNS_TEST_UNAVAILABLE=skip): {error}"
            );
            ExitCode::FAILURE
        }
    }
}
