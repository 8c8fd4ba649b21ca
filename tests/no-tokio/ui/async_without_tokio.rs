use netns_test_runtime::netns_test;

#[netns_test]
async fn needs_tokio() {}

fn main() {}
