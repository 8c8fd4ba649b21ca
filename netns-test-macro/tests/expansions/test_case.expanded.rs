#[cfg(not(test))]
const _: () = {
    use ::netns_test_runtime::__private as __netns_test_private;
};
#[allow(clippy::bool_assert_comparison)]
#[allow(unknown_lints, clippy::redundant_test_prefix)]
fn test_case_1_v4() {
    use ::netns_test_runtime::__private as __netns_test_private;
    fn test_case_1_v4() {
        let _result = super::t(4);
        _result
    }
    let __netns_test = __netns_test_private::register!(
        __netns_test_private::Test { path : ::core::concat!(::core::module_path!(), "::",
        "test_case_1_v4"), should_panic : __netns_test_private::ShouldPanic::No, options
        : __netns_test_private::Options { ..__netns_test_private::Options::DEFAULT },
        body : __netns_test_private::Body::Plain(||
        __netns_test_private::TestResult::into_test_result(test_case_1_v4())), runs :
        __netns_test_private::Runs::new(), }
    );
    __netns_test_private::run::<()>(__netns_test)
}
