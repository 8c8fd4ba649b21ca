use netns_test_runtime::netns_test;

#[netns_test(timeout = "1s", timeout = "2s")]
fn repeated() {}

fn main() {}
