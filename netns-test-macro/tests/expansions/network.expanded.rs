#[cfg(not(test))]
const _: () = {
    use ::netns_test_runtime::__private as __netns_test_private;
    let _: fn() -> __netns_test_private::NetworkBuilder = nets::two_homes;
};
#[::core::prelude::v1::test]
fn t() {
    use ::netns_test_runtime::__private as __netns_test_private;
    async fn t(net: &Network) {}
    let __netns_test = __netns_test_private::register!(
        __netns_test_private::Test { path : ::core::concat!(::core::module_path!(), "::",
        "t"), should_panic : __netns_test_private::ShouldPanic::No, options :
        __netns_test_private::Options { ..__netns_test_private::Options::DEFAULT }, body
        : __netns_test_private::Body::WithNetwork(nets::two_homes, | __netns_ns | { let
        __netns_body = ::core::pin::pin!(async move {
        __netns_test_private::TestResult::into_test_result(t(__netns_ns). await) });
        __netns_test_private::block_on(__netns_test_private::Tokio,
        __netns_test_private::Flavor::CurrentThread, __netns_body) }), runs :
        __netns_test_private::Runs::new(), }
    );
    __netns_test_private::run::<()>(__netns_test)
}
