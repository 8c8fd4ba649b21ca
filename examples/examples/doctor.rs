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
    let chosen = match std::env::var("NETNS_TEST_MODE").as_deref() {
        Ok("thread") => "thread (forced by NETNS_TEST_MODE)",
        Ok("process") => "process (forced by NETNS_TEST_MODE)",
        _ if diagnosis.thread_mode() => "thread",
        _ if diagnosis.process_mode() => "process",
        _ => "none: netns tests will fail (or pass as skipped with NETNS_TEST_UNAVAILABLE=skip)",
    };
    println!("mode netns tests will use: {chosen}");
    if diagnosis.thread_mode() || diagnosis.process_mode() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
