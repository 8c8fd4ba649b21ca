#[cfg(not(test))]
const _: () = {};
#[::core::prelude::v1::test]
fn binds() {
    fn binds() {
        body();
    }
    #[::netns_test_runtime::__private::linkme::distributed_slice(
        ::netns_test_runtime::__private::TESTS
    )]
    #[linkme(crate = ::netns_test_runtime::__private::linkme)]
    static __NETNS_TEST: ::netns_test_runtime::__private::Test = ::netns_test_runtime::__private::Test {
        path: ::core::concat!(::core::module_path!(), "::", "binds"),
        should_panic: ::netns_test_runtime::__private::ShouldPanic::No,
        timeout: ::core::option::Option::None,
        sysfs: false,
        process: false,
        body: ::netns_test_runtime::__private::Body::Plain(|| ::netns_test_runtime::__private::report(
            binds(),
        )),
    };
    ::netns_test_runtime::__private::run::<()>(&__NETNS_TEST)
}
