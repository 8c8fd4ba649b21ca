#[cfg(not(test))]
const _: () = {
    my::netns::__private::assert_report::<Result<(), String>>();
    my::netns::__private::assert_async_runtime::<my::netns::__private::Tokio>();
};
#[::core::prelude::v1::test]
fn t() -> ::core::result::Result<(), my::netns::__private::TestError> {
    async fn t(ns: &NetNs) -> Result<(), String> {
        Ok(())
    }
    #[my::netns::__private::linkme::distributed_slice(my::netns::__private::TESTS)]
    #[linkme(crate = my::netns::__private::linkme)]
    static __NETNS_TEST: my::netns::__private::Test = my::netns::__private::Test {
        path: ::core::concat!(::core::module_path!(), "::", "t"),
        should_panic: my::netns::__private::ShouldPanic::No,
        timeout: ::core::option::Option::None,
        sysfs: false,
        process: false,
        body: my::netns::__private::Body::WithNs(|__netns_ns| {
            let __netns_body = ::core::pin::pin!(
                async move { my::netns::__private::report(t(& __netns_ns). await) }
            );
            my::netns::__private::block_on(
                my::netns::__private::Tokio,
                my::netns::__private::Flavor::MultiThread(
                    ::core::option::Option::Some(2usize),
                ),
                __netns_body,
            )
        }),
    };
    my::netns::__private::run::<
        ::core::result::Result<(), my::netns::__private::TestError>,
    >(&__NETNS_TEST)
}
