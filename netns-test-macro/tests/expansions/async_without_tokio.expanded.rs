::core::compile_error! {
    "an `async` `#[netns_test]` runs on tokio: enable the `tokio` feature of `netns-test-runtime` in Cargo.toml: `netns-test-runtime = { version = \"0.1\", features = [\"tokio\"] }`"
}
#[allow(dead_code, unused)]
async fn t() {}
