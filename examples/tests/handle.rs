//! `NetNs`: a test's own namespace, and more namespaces made on demand.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use netns_test_runtime::{NetNs, netns_test};

/// Two namespaces, each with its own port 80.
#[netns_test]
fn each_namespace_has_its_own_ports(ns: &NetNs) {
    let _mine = TcpListener::bind("127.0.0.1:80").expect("port 80 in the test's namespace");
    let other = NetNs::new().expect("a second namespace");
    assert_ne!(other.inode(), ns.inode());
    // `run` executes a closure on a thread inside `other`, and may borrow.
    let reply = other
        .run(|| -> std::io::Result<Vec<u8>> {
            let listener = TcpListener::bind("127.0.0.1:80")?;
            let mut client = TcpStream::connect("127.0.0.1:80")?;
            let (mut server, _) = listener.accept()?;
            client.write_all(b"hi")?;
            drop(client);
            let mut got = Vec::new();
            server.read_to_end(&mut got)?;
            Ok(got)
        })
        .expect("run in the second namespace")
        .expect("talk over its loopback");
    assert_eq!(reply, b"hi");
}

/// `enter` moves this thread until the guard drops, panics included.
#[netns_test]
fn enter_and_come_back(ns: NetNs) {
    let other = NetNs::new().unwrap();
    {
        let _inside = other.enter().unwrap();
        assert_eq!(NetNs::current().unwrap().inode(), other.inode());
    }
    assert_eq!(NetNs::current().unwrap().inode(), ns.inode());
}
