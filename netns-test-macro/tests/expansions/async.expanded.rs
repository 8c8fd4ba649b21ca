#[cfg(not(test))]
const _: () = {
    use my::netns::__private as __netns_test_private;
    let _ = <Result<(), String> as __netns_test_private::TestResult>::into_test_result;
};
#[::core::prelude::v1::test]
fn t() -> impl ::std::process::Termination {
    use my::netns::__private as __netns_test_private;
    async fn t(ns: &NetNs) -> Result<(), String> {
        __netns_test_private::noted(Ok(()))
    }
    let __netns_test = __netns_test_private::register!(
        __netns_test_private::Test { path : ::core::concat!(::core::module_path!(), "::",
        "t"), should_panic : __netns_test_private::ShouldPanic::No, options :
        __netns_test_private::Options { ..__netns_test_private::Options::DEFAULT }, body
        : __netns_test_private::Body::WithNs(| __netns_ns | { let __netns_body =
        ::core::pin::pin!(async move {
        __netns_test_private::TestResult::into_test_result(t(& __netns_ns). await) });
        __netns_test_private::block_on(__netns_test_private::Tokio,
        __netns_test_private::Flavor::MultiThread(::core::option::Option::Some(2usize)),
        __netns_body) }), runs : __netns_test_private::Runs::new(), }
    );
    __netns_test_private::run::<
        ::core::result::Result<(), __netns_test_private::TestError>,
    >(__netns_test)
}
