//! The expansion names only `::core`, `::std` and the runtime, so a module
//! that shadows common names still compiles and runs its tests.

#![allow(dead_code, non_camel_case_types, unused_macros)]

mod std {}
mod core {}
struct Result;
struct Ok;
struct Err;
struct Box;
struct Option;
struct Some;
struct None;
macro_rules! panic {
    ($($tokens:tt)*) => {
        compile_error!("the expansion used the user's `panic!`")
    };
}
macro_rules! concat {
    ($($tokens:tt)*) => {
        compile_error!("the expansion used the user's `concat!`")
    };
}
macro_rules! module_path {
    () => {
        compile_error!("the expansion used the user's `module_path!`")
    };
}

use netns_test_runtime::netns_test;

#[netns_test]
fn plain() {
    ::std::net::TcpListener::bind("127.0.0.1:80").expect("bind");
}

#[netns_test]
fn returns_a_result() -> ::std::result::Result<(), ::std::string::String> {
    ::std::result::Result::Ok(())
}

#[netns_test(timeout = "30s")]
#[should_panic(expected = "expected")]
fn should_panic() {
    ::std::panic!("expected");
}

#[netns_test(threads = 2)]
async fn async_with_threads(ns: &netns_test_runtime::NetNs) {
    ::std::assert!(ns.inode() > 0);
}

/// A doc comment stays, and a `#[test]` already present is not duplicated:
/// two would define the test twice, which does not compile.
#[netns_test]
#[::core::prelude::v1::test]
fn with_its_own_test_attribute() {}

/// The body runs on a thread named like the test, as libtest names its own,
/// in every mode: panic messages name the test.
#[netns_test]
fn the_body_thread_is_named_like_the_test() {
    ::std::assert_eq!(
        ::std::thread::current().name(),
        ::core::option::Option::Some("the_body_thread_is_named_like_the_test")
    );
}

mod nested {
    #[netns_test_runtime::netns_test]
    fn in_a_module() {
        ::std::assert_eq!(
            ::std::thread::current().name(),
            ::core::option::Option::Some("nested::in_a_module")
        );
    }
}
