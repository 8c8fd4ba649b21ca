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
