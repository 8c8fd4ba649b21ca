#[cfg(not(test))]
const _: () = {};
/// docs
#[ignore = "slow"]
#[should_panic(expected = "boom")]
#[::core::prelude::v1::test]
fn t() {
    fn t() {}
    #[::netns_test_runtime::__private::linkme::distributed_slice(
        ::netns_test_runtime::__private::TESTS
    )]
    #[linkme(crate = ::netns_test_runtime::__private::linkme)]
    static __NETNS_TEST: ::netns_test_runtime::__private::Test = ::netns_test_runtime::__private::Test {
        path: ::core::concat!(::core::module_path!(), "::", "t"),
        should_panic: ::netns_test_runtime::__private::ShouldPanic::WithMessage("boom"),
        timeout: ::core::option::Option::None,
        sysfs: false,
        process: false,
        body: ::netns_test_runtime::__private::Body::Plain(|| ::netns_test_runtime::__private::report(
            t(),
        )),
    };
    ::netns_test_runtime::__private::run::<()>(&__NETNS_TEST)
}
