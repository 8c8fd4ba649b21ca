//! The `#[netns_test]` attribute of [netns-test].
//!
//! Do not depend on this crate directly: depend on `netns-test-runtime`, which
//! re-exports the attribute and holds everything the expansion calls. This crate
//! only parses and validates the attribute and emits a plain `#[test]` that hands
//! the body to the runtime; privilege and platform are decided at run time.
//!
//! [netns-test]: https://docs.rs/netns-test-runtime

mod args;
mod expand;
mod item;
mod noted;

use proc_macro::TokenStream;

/// Runs a test in its own fresh Linux network namespace, with `lo` up.
///
/// Put it on a `fn` or `async fn` that takes nothing, `&NetNs` or `NetNs`
/// (or `&Network`, with `network = ...`), and
/// returns `()` or `Result<(), E>` with `E: Debug`. It expands to one plain
/// `#[test]` (none is added if a `#[test]` below it, or test-case above it,
/// registers the function), and every other attribute stays:
/// `#[should_panic]`, `#[ignore]`, `#[cfg_attr]`, docs. `#[test_case]`,
/// `#[rstest]`, `#[tokio::test]` and `#[test_log::test]` go above it.
///
/// Arguments, all optional:
///
/// - `threads = N`: an async test runs on a multi-thread tokio runtime with N
///   workers, instead of a current-thread one; `threads` alone gives tokio's
///   default count, one worker per core. Sync tests take no `threads`:
///   threads they spawn already share their namespace.
/// - `timeout = "10s"`: fail the test after this long (`ms`, `s` or `m`).
/// - `seed = 7`: the seed of the test's draws (a wire's loss, jitter, ...),
///   random by default; `NETNS_TEST_SEED` overrides it, to replay a failure.
/// - `network = two_homes`: the test takes `&Network`, built inside its
///   namespace, before the body, from the declaration that
///   `fn two_homes() -> NetworkBuilder` returns; a declaration that cannot
///   be built fails the test as netns-test's error, not the body's.
/// - `sysfs`: a private mount namespace with a sysfs of the test's network
///   namespace on `/sys`, so `/sys/class/net` lists the test's links.
/// - `process`: run this test in a process of its own, whatever mode the
///   other tests use: for code with process-wide pools (async-std's
///   executor, rayon's global pool) that a thread-mode or helper-mode test
///   would leave in its namespace.
/// - `capture`: capture every packet of the test's namespaces into a pcapng
///   file, kept if the test fails, as `NETNS_TEST_CAPTURE=failed` does for
///   every test.
/// - `crate = "path"`: the path to `netns_test_runtime`, when re-exported.
///
/// The crate documentation of `netns_test_runtime` has compiled examples,
/// and says how the namespace is made in each mode.
#[proc_macro_attribute]
pub fn netns_test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::netns_test(args.into(), item.into(), cfg!(feature = "tokio")).into()
}
