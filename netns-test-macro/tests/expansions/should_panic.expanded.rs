#[cfg(not(test))]
const _: () = {
    use ::netns_test_runtime::__private as __netns_test_private;
};
/// docs
#[ignore = "slow"]
#[should_panic(expected = "boom")]
#[::core::prelude::v1::test]
fn t() {
    use ::netns_test_runtime::__private as __netns_test_private;
    fn t() {}
    let __netns_test = __netns_test_private::register!(
        __netns_test_private::Test { path : ::core::concat!(::core::module_path!(), "::",
        "t"), should_panic : __netns_test_private::ShouldPanic::WithMessage("boom"),
        options : __netns_test_private::Options {
        ..__netns_test_private::Options::DEFAULT }, body :
        __netns_test_private::Body::Plain(||
        __netns_test_private::TestResult::into_test_result(t())), runs :
        __netns_test_private::Runs::new(), }
    );
    __netns_test_private::run::<()>(__netns_test)
}
