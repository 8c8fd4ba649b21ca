#[cfg(not(test))]
const _: () = {};
#[cfg_attr(unix, should_panic = "on unix")]
#[should_panic]
#[::core::prelude::v1::test]
fn t() {
    fn t() {}
    #[::netns_test_runtime::__private::linkme::distributed_slice(
        ::netns_test_runtime::__private::TESTS
    )]
    #[linkme(crate = ::netns_test_runtime::__private::linkme)]
    static __NETNS_TEST: ::netns_test_runtime::__private::Test = ::netns_test_runtime::__private::Test {
        path: ::core::concat!(::core::module_path!(), "::", "t"),
        should_panic: if ::core::cfg!(unix) {
            ::netns_test_runtime::__private::ShouldPanic::WithMessage("on unix")
        } else {
            ::netns_test_runtime::__private::ShouldPanic::Yes
        },
        timeout: ::core::option::Option::None,
        sysfs: false,
        process: false,
        body: ::netns_test_runtime::__private::Body::Plain(|| ::netns_test_runtime::__private::report(
            t(),
        )),
    };
    ::netns_test_runtime::__private::run::<()>(&__NETNS_TEST)
}
