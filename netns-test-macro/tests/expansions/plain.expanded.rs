#[cfg(not(test))]
const _: () = {
    use ::netns_test_runtime::__private as __netns_test_private;
};
#[::core::prelude::v1::test]
fn binds() {
    use ::netns_test_runtime::__private as __netns_test_private;
    fn binds() {
        body();
    }
    let __netns_test = __netns_test_private::register!(
        __netns_test_private::Test { path : ::core::concat!(::core::module_path!(), "::",
        "binds"), should_panic : __netns_test_private::ShouldPanic::No, options :
        __netns_test_private::Options { ..__netns_test_private::Options::DEFAULT }, body
        : __netns_test_private::Body::Plain(||
        __netns_test_private::TestResult::into_test_result(binds())), runs :
        __netns_test_private::Runs::new(), }
    );
    __netns_test_private::run::<()>(__netns_test)
}
