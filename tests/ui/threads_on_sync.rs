use netns_test_runtime::netns_test;

#[netns_test(threads = 4)]
fn sync_with_threads() {}

fn main() {}
