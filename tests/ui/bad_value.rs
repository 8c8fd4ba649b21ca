use netns_test_runtime::netns_test;

#[netns_test(threads = 0)]
async fn zero_threads() {}

#[netns_test(threads = "4")]
async fn string_threads() {}

#[netns_test(threads = 2.5)]
async fn float_threads() {}

#[netns_test(timeout = 10)]
fn number_timeout() {}

#[netns_test(timeout = "10h")]
fn hours_timeout() {}

#[netns_test(timeout = "0s")]
fn zero_timeout() {}

#[netns_test(seed = "7")]
fn string_seed() {}

#[netns_test(seed = -1)]
fn negative_seed() {}

#[netns_test(seed)]
fn seed_without_a_value() {}

#[netns_test(crate = 5)]
fn number_crate() {}

#[netns_test(crate = "not a path")]
fn bad_crate() {}

#[netns_test(sysfs = true)]
fn sysfs_with_a_value() {}

#[netns_test(process = true)]
fn process_with_a_value() {}

fn main() {}
