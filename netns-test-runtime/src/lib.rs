//! Run each Rust test in its own fresh Linux network namespace.
//!
//! # Overview
//!
//! Network code needs real sockets, interfaces and routes to be tested
//! honestly, but tests that touch the host's network collide over ports and
//! addresses and can damage the machine. `#[netns_test]` gives every test a
//! private network stack with `lo` up, and the body never runs in the host's
//! namespace: the runtime checks that before it runs the body, and fails the
//! test otherwise.
//!
//! # Example
//!
//! ```no_run
//! use netns_test_runtime::netns_test;
//!
//! #[netns_test]
//! fn binds_port_80() {
//!     // Port 80 is free: this namespace has nothing but `lo`.
//!     std::net::TcpListener::bind("127.0.0.1:80").unwrap();
//! }
//!
//! #[netns_test]
//! fn may_return_a_result() -> std::io::Result<()> {
//!     let socket = std::net::UdpSocket::bind("[::1]:53")?;
//!     socket.send_to(b"ping", "[::1]:53")?;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! Async tests run on a tokio runtime built inside the namespace (feature
//! `tokio`), and a test may take the handle to its namespace, [`NetNs`]:
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # mod tests {
//! use netns_test_runtime::{NetNs, netns_test};
//!
//! #[netns_test(threads = 4)] // four workers, all inside the namespace
//! async fn four_workers(ns: &NetNs) {
//!     let other = NetNs::new().unwrap(); // one more namespace, `lo` up
//!     let bound = other.run(|| std::net::TcpListener::bind("127.0.0.1:80").is_ok());
//!     assert!(bound.unwrap());
//!     assert_ne!(other.inode(), ns.inode());
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! [`NetNs`] also builds topologies over rtnetlink: veth pairs into other
//! namespaces, bridges, addresses, routes and `net.*` sysctls. Across two
//! namespaces, with async I/O (a socket stays in the namespace it was made
//! in, whichever thread then uses it):
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
//! use netns_test_runtime::NetNs;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // In a test, the server's would be the test's own: `async fn t(server: &NetNs)`.
//! let (server, client) = (NetNs::new()?, NetNs::new()?);
//! server.add_veth("s0", &client, "c0")?;
//! server.add_address("s0", "10.1.0.1/24".parse()?)?;
//! client.add_address("c0", "10.1.0.2/24".parse()?)?;
//! server.set_link_up("s0")?;
//! client.set_link_up("c0")?; // returns once both ends pass packets
//! let listener = server.run(|| std::net::TcpListener::bind("10.1.0.1:80"))??;
//! let stream = client.run(|| std::net::TcpStream::connect("10.1.0.1:80"))??;
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let received = runtime.block_on(async move {
//!     listener.set_nonblocking(true)?;
//!     stream.set_nonblocking(true)?;
//!     let listener = tokio::net::TcpListener::from_std(listener)?;
//!     let mut stream = tokio::net::TcpStream::from_std(stream)?;
//!     stream.write_all(b"hello").await?;
//!     drop(stream);
//!     let (mut accepted, peer) = listener.accept().await?;
//!     assert_eq!(peer.ip().to_string(), "10.1.0.2");
//!     let mut received = Vec::new();
//!     accepted.read_to_end(&mut received).await?;
//!     Ok::<_, std::io::Error>(received)
//! })?;
//! assert_eq!(received, b"hello");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! [`Network::builder`] declares hosts, routers and switches, their links
//! (veth pairs, or [`Wire`]s with conditions) and NAT in a few lines, and
//! makes every namespace, address and route from them.
//!
//! # Use it
//!
//! ```toml
//! [dev-dependencies]
//! netns-test-runtime = { version = "0.1", features = ["tokio"] } # `tokio` only for async tests
//! ```
//!
//! `#[netns_test]` expands to one plain `#[test]`, so it stacks with the
//! attributes of libtest: `#[should_panic]`, `#[ignore]` and `#[cfg_attr]`
//! keep working below or above it. Other test attributes go **above** it:
//!
//! - `#[tokio::test]` and `#[test_log::test]`, so that their runtime or
//!   logger is set up inside the namespace (`#[tokio::test]` below is a
//!   compile error that says to swap them);
//! - `#[test_case(..)]` and `#[rstest]` with its `#[case]`s: each case is one
//!   test in a namespace of its own (below, it is a compile error that says
//!   to swap them). A case finds its namespace with [`NetNs::current`]. For
//!   an `async fn`, rstest wants a test attribute it can see: write
//!   `#[test_attr(netns_test)]` instead of `#[netns_test]`.
//!
//! `#[test]` is the one exception: above `#[netns_test]` it registers the
//! test a second time, which `#[netns_test]` cannot see; that second start
//! fails and says to remove it. Put it below, or leave it out.
//!
//! ```ignore
//! use netns_test_runtime::{NetNs, netns_test};
//! use test_case::test_case;
//!
//! #[test_case("127.0.0.1:80" ; "v4")]
//! #[test_case("[::1]:80" ; "v6")]
//! #[netns_test]
//! fn binds(address: &str) -> Result<(), Box<dyn std::error::Error>> {
//!     let ns = NetNs::current()?; // this case's own namespace
//!     assert!(ns.link("lo")?.up);
//!     std::net::TcpListener::bind(address)?;
//!     Ok(())
//! }
//! ```
//!
//! # Requirements
//!
//! Linux, with `/proc` mounted, and one of:
//!
//! - **thread mode**: CAP_SYS_ADMIN (e.g. root). The body runs on a thread of
//!   the test process that [unshare(2)]s `CLONE_NEWNET`; the thread's exit
//!   discards the namespace.
//! - **helper mode**: unprivileged user namespaces. Long-lived helper
//!   processes, the test binary run again inside a new user namespace
//!   ([user_namespaces(7)]), run each body on a thread of their own that
//!   unshares a fresh network namespace, one test at a time per helper.
//! - **process mode**: unprivileged user namespaces. The test binary runs
//!   itself again for just this test, inside a new user and network
//!   namespace, and reports the child's outcome as its own: nothing is shared
//!   between tests, at a fork and exec per test.
//!
//! Thread mode is used where it works, helper mode otherwise;
//! `NETNS_TEST_MODE` forces one. Rootless, a process that runs just one
//! `#[netns_test]` by `--exact` name (as cargo-nextest runs every test)
//! enters a user namespace of its own before `main`, and runs it in thread
//! mode. When no mode works, the test fails with the causes found and their
//! remedies; [`diagnose`] and the `doctor` example print the same report,
//! and [`selected_mode`] names the mode tests will use.
//!
//! # Options
//!
//! - `#[netns_test(threads = N)]`: async tests run on a multi-thread runtime
//!   with N workers, instead of a current-thread runtime.
//! - `#[netns_test(timeout = "10s")]`: fail the test after this long.
//! - `#[netns_test(seed = 7)]`: the seed of the test's draws (a [`Wire`]'s
//!   loss, duplication, jitter and reordering; see [`seed`]).
//! - `#[netns_test(sysfs)]`: give the test a private mount namespace with a
//!   sysfs of its network namespace on `/sys`, and `/proc/net` showing it.
//! - `#[netns_test(process)]`: run the test in a process of its own,
//!   whatever the mode, for code with process-wide pools.
//! - `#[netns_test(capture)]`: capture the test's packets, kept if it fails.
//! - `#[netns_test(crate = "path")]`: where this crate is, when re-exported.
//! - `NETNS_TEST_MODE=thread|helper|process`: force a mode.
//! - `NETNS_TEST_TIMEOUT=30s`: the default timeout.
//! - `NETNS_TEST_SEED=7`: the seed of every test, over its own: replays a
//!   failure whose report printed seed 7.
//! - `NETNS_TEST_UNAVAILABLE=skip`: pass, with a loud line, the tests that
//!   cannot get a namespace, instead of failing them (`fail`, the default).
//!
//! - `NETNS_TEST_CAPTURE=off|failed|all`: capture every test's packets into
//!   a pcapng file, kept when the test fails (`failed`) or always (`all`).
//! - `NETNS_TEST_CAPTURE_DIR=dir`: where capture files go (by default
//!   `netns-test-captures/` beside the test binary's `deps/`).
//!
//! A value of these variables that is not understood fails the test, naming
//! the values it takes.
//!
//! # When a test fails
//!
//! The report of a failed `#[netns_test]` (a panic, an `Err`, a timeout)
//! shows the state of every namespace the test made, at the moment of the
//! failure: links with their state and addresses, routes, neighbours, and
//! TCP and UDP sockets. With capture on, it also gives the path of a pcapng
//! file of every packet on every interface of those namespaces, one
//! interface per namespace and link (`test/lo`, `ns2/b0`).
//!
//! [unshare(2)]: https://man7.org/linux/man-pages/man2/unshare.2.html
//! [user_namespaces(7)]: https://man7.org/linux/man-pages/man7/user_namespaces.7.html

#![deny(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "netns-test-runtime works only on Linux: network namespaces are a Linux kernel feature; \
     put netns tests behind #[cfg(target_os = \"linux\")]"
);

#[cfg(feature = "tokio")]
mod async_ns;
mod command;
mod diagnose;
mod env;
mod error;
mod fault;
mod forensics;
mod mode;
mod names;
mod netlink;
mod netns;
mod outcome;
mod packet;
mod plan;
mod procfs;
mod run;
mod sandbox;
mod seed;
mod test;
mod topology;
mod userns;
mod watchdog;

#[doc(hidden)]
pub mod __private;

#[doc(inline)]
pub use netns_test_macro::netns_test;

#[cfg(feature = "tokio")]
pub use async_ns::Task;
pub use diagnose::{Cause, Diagnosis, diagnose};
pub use error::{CaptureDirProblem, ChildEnded, Error, NetlinkError, Stopped};
pub use mode::Mode;
pub use mode::select::selected_mode;
pub use netns::{EnterGuard, NetNs};
/// An error number from the kernel, as the errors of this crate carry it.
pub use nix::errno::Errno;
pub use seed::seed;
pub use test::TestResult;
pub use topology::{
    Conditions, Connection, Interface, IpPrefix, Link, MacAddr, Nat, Neighbour, NeighbourState,
    Network, NetworkBuilder, Node, OperState, Protocol, Route, Socket, SocketState, Tuple, Via,
    Wire, WireCounters,
};
