use netns_test_runtime::netns_test;

#[netns_test(thread = 4)]
async fn misspelled() {}

#[netns_test(sysctl)]
fn unknown_flag() {}

fn main() {}
