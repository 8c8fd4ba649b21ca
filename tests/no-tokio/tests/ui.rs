//! An async test without the runtime's `tokio` feature is a compile error
//! that names the feature.

#[test]
fn ui_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
