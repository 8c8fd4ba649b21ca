#[cfg(not(test))]
const _: () = {
    use ::netns_test_runtime::__private as __netns_test_private;
    let _ = <std::io::Result<()> as __netns_test_private::TestResult>::into_test_result;
};
#[::core::prelude::v1::test]
fn t() -> impl ::std::process::Termination {
    use ::netns_test_runtime::__private as __netns_test_private;
    fn t(ns: NetNs) -> std::io::Result<()> {
        __netns_test_private::noted(Ok(()))
    }
    let __netns_test = __netns_test_private::register!(
        __netns_test_private::Test { path : ::core::concat!(::core::module_path!(), "::",
        "t"), should_panic : __netns_test_private::ShouldPanic::No, options :
        __netns_test_private::Options { timeout :
        ::core::option::Option::Some(::core::time::Duration::from_millis(3000u64)), seed
        : ::core::option::Option::Some(7u64), sysfs : true, process : true, capture :
        true, ..__netns_test_private::Options::DEFAULT }, body :
        __netns_test_private::Body::WithNs(| __netns_ns |
        __netns_test_private::TestResult::into_test_result(t(__netns_ns))), runs :
        __netns_test_private::Runs::new(), }
    );
    __netns_test_private::run::<
        ::core::result::Result<(), __netns_test_private::TestError>,
    >(__netns_test)
}
