//! The basics: every test gets its own network namespace with `lo` up.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};

use netns_test_runtime::netns_test;

/// Both of these bind the same fixed port, and they may run at the same time:
/// each has its own network stack.
#[netns_test]
fn binds_port_80() {
    let listener = TcpListener::bind("127.0.0.1:80").expect("port 80 is free in a fresh namespace");
    assert_eq!(listener.local_addr().unwrap().port(), 80);
}

#[netns_test]
fn binds_port_80_too() {
    TcpListener::bind("127.0.0.1:80").expect("port 80 is free in a fresh namespace");
}

/// A test may return a `Result`; an `Err` fails it and shows the error.
#[netns_test]
fn tcp_echo_over_ipv6() -> std::io::Result<()> {
    let listener = TcpListener::bind("[::1]:7")?;
    let client = std::thread::spawn(|| -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect("[::1]:7")?;
        stream.write_all(b"hello")?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        Ok(reply)
    });
    let (mut server, _) = listener.accept()?;
    let mut request = [0; 5];
    server.read_exact(&mut request)?;
    server.write_all(&request)?;
    drop(server);
    assert_eq!(client.join().unwrap()?, b"hello");
    Ok(())
}

#[netns_test]
fn udp_round_trip() -> std::io::Result<()> {
    let server = UdpSocket::bind("127.0.0.1:53")?;
    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.send_to(b"query", "127.0.0.1:53")?;
    let mut buffer = [0; 16];
    let (n, from) = server.recv_from(&mut buffer)?;
    server.send_to(&buffer[..n], from)?;
    let (n, _) = client.recv_from(&mut buffer)?;
    assert_eq!(&buffer[..n], b"query");
    Ok(())
}
