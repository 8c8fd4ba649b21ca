//! Async tests: the runtime is built inside the test's namespace, so every
//! worker and blocking thread is in it.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, Mutex};

use netns_test_runtime::{NetNs, netns_test};
use netns_test_tests::{assert_fresh_namespace, netns_inode};
use tokio::runtime::{Handle, RuntimeFlavor};

#[netns_test]
async fn runs_on_a_current_thread_runtime(ns: &NetNs) {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::CurrentThread
    );
    assert_eq!(netns_inode(), ns.inode());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:80").await.unwrap();
    let (client, server) = tokio::join!(
        tokio::net::TcpStream::connect("127.0.0.1:80"),
        listener.accept()
    );
    assert_eq!(client.unwrap().local_addr().unwrap(), server.unwrap().1);
}

const WORKERS: usize = 4;

/// Four tasks that wait for each other can only all run at once on four
/// different workers; each records its thread and namespace, and so do
/// blocking tasks.
#[netns_test(threads = 4, timeout = "60s")]
async fn every_worker_and_blocking_thread_is_inside(ns: NetNs) {
    assert_eq!(
        Handle::current().runtime_flavor(),
        RuntimeFlavor::MultiThread
    );
    assert_eq!(Handle::current().metrics().num_workers(), WORKERS);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(WORKERS));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (seen, barrier) = (seen.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait();
                seen.lock()
                    .unwrap()
                    .push((std::thread::current().id(), netns_inode()));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let blocking: Vec<_> = (0..8)
        .map(|_| tokio::task::spawn_blocking(|| (std::thread::current().id(), netns_inode())))
        .collect();
    let mut blocking_seen = Vec::new();
    for task in blocking {
        blocking_seen.push(task.await.unwrap());
    }
    let seen = seen.lock().unwrap();
    let workers: BTreeSet<_> = seen
        .iter()
        .map(|(thread, _)| format!("{thread:?}"))
        .collect();
    assert_eq!(
        workers.len(),
        WORKERS,
        "the tasks ran on {} workers",
        workers.len()
    );
    for (thread, inode) in seen.iter().chain(&blocking_seen) {
        assert_eq!(
            *inode,
            ns.inode(),
            "{thread:?} is outside the test's namespace"
        );
    }
}

#[netns_test]
async fn may_return_a_result() -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind("[::1]:53").await?;
    socket.send_to(b"ping", "[::1]:53").await?;
    let mut buffer = [0; 4];
    socket.recv_from(&mut buffer).await?;
    assert_eq!(&buffer, b"ping");
    Ok(())
}

/// `#[tokio::test]` above `#[netns_test]` builds tokio's runtime inside the
/// namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[netns_test]
async fn tokio_test_above() {
    assert_fresh_namespace();
    let body = netns_inode();
    let worker = tokio::spawn(async { netns_inode() }).await.unwrap();
    assert_eq!(worker, body);
    tokio::net::TcpListener::bind("127.0.0.1:80")
        .await
        .expect("port 80 is free here");
}

/// `#[test_log::test]` stacks the same way.
#[test_log::test]
#[netns_test]
fn test_log_above() {
    tracing::info!("logged from inside the namespace");
    assert_fresh_namespace();
    std::net::TcpListener::bind("127.0.0.1:80").expect("port 80 is free here");
}

/// And below, since it only wraps the body.
#[netns_test]
#[test_log::test]
fn test_log_below() {
    assert_fresh_namespace();
    std::net::TcpListener::bind("127.0.0.1:80").expect("port 80 is free here");
}

/// `threads` without a value: a multi-thread runtime with tokio's default
/// worker count, one per core, as `#[tokio::test(flavor = "multi_thread")]`.
#[netns_test(threads)]
async fn threads_alone_gives_tokios_default_count() {
    let cores = std::thread::available_parallelism().expect("the core count");
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    assert_eq!(workers, cores.get());
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread
    );
}
