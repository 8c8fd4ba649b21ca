//! `crate = "..."` points the expansion at a re-export of the runtime.

use netns_test_reexport::netns::{self, netns_test};

#[netns_test(crate = "netns_test_reexport::netns")]
fn through_a_reexport(ns: &netns::NetNs) {
    assert_eq!(netns::NetNs::current().unwrap().inode(), ns.inode());
    std::net::TcpListener::bind("127.0.0.1:80").expect("port 80 is free here");
}

#[netns_test(crate = "netns_test_reexport::netns")]
#[should_panic(expected = "through the re-export")]
fn should_panic_through_a_reexport() {
    panic!("through the re-export");
}
