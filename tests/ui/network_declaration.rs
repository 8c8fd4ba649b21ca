use netns_test_runtime::{Network, netns_test};

fn not_a_declaration() -> u32 {
    7
}

#[netns_test(network = not_a_declaration)]
fn names_the_wrong_function(net: &Network) {}

fn main() {}
