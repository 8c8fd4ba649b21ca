use netns_test_runtime::{NetNs, netns_test};

#[netns_test]
fn number(port: u16) {}

#[netns_test]
fn mutable_handle(ns: &mut NetNs) {}

#[netns_test]
fn two_handles(a: &NetNs, b: NetNs) {}

fn main() {}
