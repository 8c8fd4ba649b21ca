//! Networks declared with the builder: a client reaches a server through
//! a router, over IPv4 and IPv6; two peers behind home NATs punch a hole
//! through a rendezvous server; a node on a switch is partitioned from
//! the others, then healed. No veth, address, route or sysctl by hand.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use netns_test_runtime::{Conditions, Nat, Network, netns_test};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[netns_test]
fn client_reaches_server_through_a_router() -> Result<()> {
    let net = Network::builder()
        .router("router")
        .host("server")
        .link("router")
        .host("client")
        .link("router")
        .build()?;
    let (server, client) = (net.host("server")?, net.host("client")?);
    for ip in [
        server.ipv4().ok_or("no IPv4")?.into(),
        server.ipv6().ok_or("no IPv6")?.into(),
    ] {
        let address = SocketAddr::new(ip, 8080);
        let listener = server.run(|| TcpListener::bind(address))??;
        let sent = client.spawn(move || TcpStream::connect(address)?.write_all(b"hi"))?;
        let mut got = String::new();
        listener.accept()?.0.read_to_string(&mut got)?;
        sent.join().map_err(|_| "the client panicked")??;
        assert_eq!(got, "hi");
    }
    Ok(())
}

#[netns_test]
fn peers_behind_home_nats_punch_a_hole() -> Result<()> {
    let slow = Conditions::new().delay(Duration::from_millis(30));
    // A link may name a node declared after it.
    let net = Network::builder()
        .host("rendezvous")
        .link("isp")
        .router("isp")
        .router("home1")
        .nat(Nat::port_restricted())
        .uplink("isp")
        .router("home2")
        .nat(Nat::port_restricted())
        .uplink("isp")
        .host("alice")
        .link("home1")
        .host("bob")
        .link("home2")
        .conditions(slow)
        .build()?;
    let bind = |name: &str, port: u16| -> Result<UdpSocket> {
        let socket = net
            .host(name)?
            .run(move || UdpSocket::bind(("0.0.0.0", port)))??;
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(socket)
    };
    let (server, a, b) = (
        bind("rendezvous", 3478)?,
        bind("alice", 6000)?,
        bind("bob", 6000)?,
    );
    let server_at = SocketAddr::new(
        net.host("rendezvous")?.ipv4().ok_or("no IPv4")?.into(),
        3478,
    );
    // The rendezvous sees each peer's public address, and tells the other.
    let mut buffer = [0; 64];
    let mut public = |peer: &UdpSocket| -> Result<SocketAddr> {
        peer.send_to(b"hello", server_at)?;
        Ok(server.recv_from(&mut buffer)?.1)
    };
    let (b_for_a, a_for_b) = (public(&b)?, public(&a)?);
    let mut buffer = [0; 64];
    let (mut a_heard, mut b_heard) = (false, false);
    for _ in 0..5 {
        a.send_to(b"from alice", b_for_a)?;
        b.send_to(b"from bob", a_for_b)?;
        a_heard |= a.recv_from(&mut buffer).is_ok();
        b_heard |= b.recv_from(&mut buffer).is_ok();
    }
    assert!(a_heard && b_heard);
    Ok(())
}

#[netns_test]
fn a_partitioned_node_is_cut_off_then_healed() -> Result<()> {
    let net = Network::builder()
        .switch("lan")
        .host("n1")
        .link("lan")
        .wire()
        .host("n2")
        .link("lan")
        .wire()
        .build()?;
    let (n1, n2) = (net.host("n1")?, net.host("n2")?);
    let to = SocketAddr::new(n2.ipv4().ok_or("no IPv4")?.into(), 7000);
    let listener = n2.run(move || UdpSocket::bind(to))??;
    listener.set_read_timeout(Some(Duration::from_millis(300)))?;
    let sender = n1.run(|| UdpSocket::bind("0.0.0.0:0"))??;
    let mut buffer = [0; 16];
    let mut reaches = || -> Result<bool> {
        sender.send_to(b"ping", to)?;
        Ok(listener.recv_from(&mut buffer).is_ok())
    };
    assert!(reaches()?);
    net.wire("n1", "lan")?.partition()?;
    assert!(!reaches()?);
    net.wire("n1", "lan")?.heal()?;
    assert!(reaches()?);
    Ok(())
}
