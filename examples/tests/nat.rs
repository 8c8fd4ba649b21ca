//! Hole punching: two peers, each behind a port-restricted NAT, find each
//! other through a rendezvous server and then talk directly.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use netns_test_runtime::{Nat, NetNs, netns_test};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A peer's host behind its router, whose `wan0` is `public` on the
/// internet's bridge `br0`.
fn peer(internet: &NetNs, n: u8) -> Result<NetNs> {
    let (router, host) = (
        NetNs::named(&format!("router-{n}"))?,
        NetNs::named(&format!("peer-{n}"))?,
    );
    router.add_veth("wan0", internet, &format!("port{n}"))?;
    internet.attach_to_bridge(&format!("port{n}"), "br0")?;
    internet.set_link_up(&format!("port{n}"))?;
    router.add_address("wan0", format!("203.0.113.{n}/24").parse()?)?;
    router.set_link_up("wan0")?;
    host.add_veth("eth0", &router, "lan0")?;
    host.add_address("eth0", "192.168.1.10/24".parse()?)?;
    router.add_address("lan0", "192.168.1.1/24".parse()?)?;
    host.set_link_up("eth0")?;
    router.set_link_up("lan0")?;
    host.add_default_route("192.168.1.1".parse()?)?;
    router.set_sysctl("net.ipv4.ip_forward", "1")?;
    router.add_nat("wan0", Nat::port_restricted())?;
    Ok(host)
}

#[netns_test]
fn two_peers_punch_holes_through_their_nats() -> Result<()> {
    let internet = NetNs::named("internet")?;
    internet.add_bridge("br0")?;
    internet.set_link_up("br0")?;
    internet.add_address("br0", "203.0.113.10/24".parse()?)?;
    let (a_host, b_host) = (peer(&internet, 1)?, peer(&internet, 2)?);

    let rendezvous = internet.run(|| UdpSocket::bind("203.0.113.10:3478"))??;
    let a = a_host.run(|| UdpSocket::bind("0.0.0.0:6000"))??;
    let b = b_host.run(|| UdpSocket::bind("0.0.0.0:6000"))??;
    for socket in [&rendezvous, &a, &b] {
        socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    }
    let mut buffer = [0; 64];
    // Each peer registers; the server sees its public endpoint.
    a.send_to(b"register", "203.0.113.10:3478")?;
    let (_, public_a) = rendezvous.recv_from(&mut buffer)?;
    b.send_to(b"register", "203.0.113.10:3478")?;
    let (_, public_b) = rendezvous.recv_from(&mut buffer)?;
    // The server tells each the other's; its answers come back through the NATs.
    rendezvous.send_to(public_b.to_string().as_bytes(), public_a)?;
    rendezvous.send_to(public_a.to_string().as_bytes(), public_b)?;
    let told = |peer: &UdpSocket, buffer: &mut [u8]| -> Result<SocketAddr> {
        let (len, _) = peer.recv_from(buffer)?;
        Ok(std::str::from_utf8(&buffer[..len])
            .unwrap()
            .parse()
            .unwrap())
    };
    let (b_for_a, a_for_b) = (told(&a, &mut buffer)?, told(&b, &mut buffer)?);
    // Both send: the first datagram may be dropped by the other's NAT, but
    // each opens its own NAT to the other, so a retry gets through.
    let (mut a_heard, mut b_heard) = (false, false);
    for _ in 0..3 {
        a.send_to(b"hello from a", b_for_a)?;
        b.send_to(b"hello from b", a_for_b)?;
        a_heard |= a
            .recv_from(&mut buffer)
            .is_ok_and(|(_, from)| from == b_for_a);
        b_heard |= b
            .recv_from(&mut buffer)
            .is_ok_and(|(_, from)| from == a_for_b);
    }
    assert!(a_heard && b_heard);
    Ok(())
}
