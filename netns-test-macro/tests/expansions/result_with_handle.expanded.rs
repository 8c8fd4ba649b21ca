#[cfg(not(test))]
const _: () = {
    ::netns_test_runtime::__private::assert_report::<std::io::Result<()>>();
};
#[::core::prelude::v1::test]
fn t() -> ::core::result::Result<(), ::netns_test_runtime::__private::TestError> {
    fn t(ns: NetNs) -> std::io::Result<()> {
        Ok(())
    }
    #[::netns_test_runtime::__private::linkme::distributed_slice(
        ::netns_test_runtime::__private::TESTS
    )]
    #[linkme(crate = ::netns_test_runtime::__private::linkme)]
    static __NETNS_TEST: ::netns_test_runtime::__private::Test = ::netns_test_runtime::__private::Test {
        path: ::core::concat!(::core::module_path!(), "::", "t"),
        should_panic: ::netns_test_runtime::__private::ShouldPanic::No,
        timeout: ::core::option::Option::Some(
            ::core::time::Duration::from_millis(3000u64),
        ),
        sysfs: true,
        process: true,
        body: ::netns_test_runtime::__private::Body::WithNs(|__netns_ns| ::netns_test_runtime::__private::report(
            t(__netns_ns),
        )),
    };
    ::netns_test_runtime::__private::run::<
        ::core::result::Result<(), ::netns_test_runtime::__private::TestError>,
    >(&__NETNS_TEST)
}
