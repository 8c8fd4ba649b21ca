use netns_test_runtime::netns_test;

#[netns_test]
struct Server;

#[netns_test]
mod tests {}

#[netns_test]
const PORT: u16 = 80;

fn main() {}
