//! Every input `#[netns_test]` rejects is a compile error under the offending
//! tokens, saying what is allowed. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p netns-test-tests --test ui` and review them.

#[test]
fn ui_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
