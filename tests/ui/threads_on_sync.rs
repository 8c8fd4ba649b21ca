use netns_test_runtime::netns_test;

#[netns_test(threads = 4)]
fn sync_with_threads() {}

#[netns_test(threads)]
fn sync_with_default_threads() {}

fn main() {}
