//! Async tests run on a tokio runtime built inside the test's namespace.

use netns_test_runtime::{NetNs, netns_test};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A current-thread runtime, by default.
#[netns_test]
async fn echo_on_port_7() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:7").await?;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buffer = [0; 5];
        stream.read_exact(&mut buffer).await?;
        stream.write_all(&buffer).await?;
        std::io::Result::Ok(())
    });
    let mut client = TcpStream::connect("127.0.0.1:7").await?;
    client.write_all(b"hello").await?;
    let mut reply = [0; 5];
    client.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"hello");
    server.await??;
    Ok(())
}

/// `threads = N`: a multi-thread runtime whose N workers, and its blocking
/// threads, are all inside the test's namespace. The test may take the handle.
#[netns_test(threads = 4)]
async fn four_workers(ns: &NetNs) {
    let inode = ns.inode();
    let seen = tokio::task::spawn_blocking(|| NetNs::current().map(|ns| ns.inode()))
        .await
        .expect("the blocking task")
        .expect("its namespace");
    assert_eq!(seen, inode);
}

/// A server in a second namespace, one veth pair away from the test's own,
/// where the client runs. The README shows this test: keep the two the same.
#[netns_test]
async fn echo_across_a_veth_pair(client: &NetNs) -> std::io::Result<()> {
    let server = NetNs::named("server")?; // reports and captures call it `server`
    client.add_veth("c0", &server, "s0")?;
    client.add_address("c0", "10.0.0.2/24".parse()?)?;
    server.add_address("s0", "10.0.0.1/24".parse()?)?;
    client.set_link_up("c0")?;
    server.set_link_up("s0")?; // returns once both ends pass packets

    // A socket stays in the namespace it was made in: make the server's in
    // `server`, then serve it from this test's runtime.
    let listener = server.run(|| std::net::TcpListener::bind("10.0.0.1:8080"))??;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let serving = tokio::spawn(async move {
        let (mut stream, peer) = listener.accept().await?;
        let mut buffer = [0; 5];
        stream.read_exact(&mut buffer).await?;
        stream.write_all(&buffer).await?;
        std::io::Result::Ok(peer)
    });

    let mut stream = TcpStream::connect("10.0.0.1:8080").await?;
    stream.write_all(b"hello").await?;
    let mut reply = [0; 5];
    stream.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"hello");
    let peer = serving.await??;
    assert_eq!(peer.ip().to_string(), "10.0.0.2"); // it came over the veth pair
    Ok(())
}
