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

use proc_macro::TokenStream;

/// Runs a test in its own fresh Linux network namespace.
///
/// See the documentation of `netns_test_runtime::netns_test`, which re-exports it.
#[proc_macro_attribute]
pub fn netns_test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::netns_test(args.into(), item.into()).into()
}
