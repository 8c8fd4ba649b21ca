use netns_test_runtime::netns_test;

struct Fixture;

impl Fixture {
    #[netns_test]
    fn method(&self) {}
}

fn main() {}
