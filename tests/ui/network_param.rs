use netns_test_runtime::{NetNs, Network, NetworkBuilder, netns_test};

fn two_homes() -> NetworkBuilder {
    Network::builder()
}

#[netns_test(network = two_homes)]
fn takes_a_handle(ns: &NetNs) {}

#[netns_test(network = two_homes)]
fn takes_nothing() {}

#[netns_test]
fn takes_a_network_from_nowhere(net: &Network) {}

#[netns_test(network = "two_homes")]
fn names_it_in_a_string(net: &Network) {}

fn main() {}
