use netns_test_runtime::netns_test;

#[netns_test(crate = "nonexistent")]
fn t() {}

fn main() {}
