use netns_test_runtime::netns_test;

#[netns_test]
const fn constant() {}

#[netns_test]
unsafe fn not_safe() {}

#[netns_test]
extern "C" fn foreign() {}

fn main() {}
