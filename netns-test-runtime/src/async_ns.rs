//! Async code in a namespace (feature `tokio`): a runtime of the
//! namespace's own, whose threads all live in it ([`NetNs::spawn_async`]),
//! tokio sockets made in it, and tokio commands that start in it.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::netns::{Ended, NetNs};

/// The output of a future run by [`NetNs::spawn_async`]: await it.
///
/// A panic in the future is resumed where this is awaited, with its
/// payload unchanged. Dropping a `Task` leaves its future running.
#[derive(Debug)]
#[must_use = "a task runs on when dropped; await it for its output"]
pub struct Task<T> {
    handle: tokio::task::JoinHandle<T>,
}

impl<T> Task<T> {
    /// Stops the future at its next `.await`; awaiting the task then
    /// returns [`Error::TaskCancelled`].
    pub fn abort(&self) {
        self.handle.abort();
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|joined| match joined {
                Ok(output) => Ok(output),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_) => Err(Error::TaskCancelled),
            })
    }
}

/// Async code.
impl NetNs {
    /// Runs `future` on this namespace's own tokio runtime, whose threads
    /// (two workers, and the blocking pool that `tokio::net::lookup_host`
    /// and `spawn_blocking` use) all live in it and, on a host of a
    /// [`Network`](crate::Network), resolve its names. The runtime is
    /// made at the first call, and ends, with its tasks, when this handle
    /// is dropped.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let server = NetNs::named("server")?;
    /// let inode = server.spawn_async(async { NetNs::current().map(|here| here.inode()) })?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// assert_eq!(runtime.block_on(inode)??, server.inode());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::AsyncRuntime`] when the runtime cannot be built, or the
    /// errors of [`NetNs::run`], on which it is built.
    pub fn spawn_async<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Ok(Task {
            handle: self.runtime()?.spawn(future),
        })
    }

    /// The namespace's runtime, built at the first call on a thread inside
    /// it, so that its threads are made there (and each checks it is).
    fn runtime(&self) -> Result<&tokio::runtime::Runtime, Error> {
        if let Some(Ended(Some(runtime))) = self.runtime.0.get() {
            return Ok(runtime);
        }
        let ns = self.try_clone().map_err(|source| Error::Duplicate {
            step: "NetNs::spawn_async, for its runtime's threads",
            source,
        })?;
        let built = self.run(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("netns-test-async")
                .enable_all()
                .on_thread_start(move || {
                    // Made by a thread inside, so inside; if not, no task
                    // may run in the wrong namespace.
                    if let Err(error) = ns.move_here() {
                        eprintln!(
                            "netns-test: a runtime thread could not enter its namespace: {error}"
                        );
                        std::process::abort();
                    }
                })
                .build()
        })?;
        let built = built.map_err(|source| Error::AsyncRuntime { source })?;
        // Another thread may have built one meanwhile: the first stays.
        let ended = self.runtime.0.get_or_init(|| Ended(Some(built)));
        ended.0.as_ref().ok_or(Error::TaskCancelled)
    }

    /// Binds a tokio [`TcpListener`](tokio::net::TcpListener) in this
    /// namespace, on the first of `address`'s addresses that binds,
    /// resolved in it (so by a [`Network`](crate::Network)'s names). Call
    /// it inside a tokio runtime, which the listener then runs on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let server = NetNs::named("server")?;
    /// let listener = server.bind_tcp("127.0.0.1:80").await?;
    /// let client = server.connect_tcp(listener.local_addr()?).await?;
    /// assert_eq!(listener.accept().await?.1, client.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The bind's, or the resolution's; or those of [`NetNs::run`],
    /// converted.
    pub async fn bind_tcp(
        &self,
        address: impl ToSocketAddrs + Send,
    ) -> io::Result<tokio::net::TcpListener> {
        let listener = self.run(move || std::net::TcpListener::bind(address))??;
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)
    }

    /// Binds a tokio [`UdpSocket`](tokio::net::UdpSocket) in this
    /// namespace, as [`NetNs::bind_tcp`] binds a listener.
    ///
    /// # Errors
    ///
    /// As [`NetNs::bind_tcp`].
    pub async fn bind_udp(
        &self,
        address: impl ToSocketAddrs + Send,
    ) -> io::Result<tokio::net::UdpSocket> {
        let socket = self.run(move || std::net::UdpSocket::bind(address))??;
        socket.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(socket)
    }

    /// Connects a tokio [`TcpStream`](tokio::net::TcpStream) from this
    /// namespace to the first of `address`'s addresses that accepts,
    /// resolved in it (so by a [`Network`](crate::Network)'s names): the
    /// socket is made inside, and connects without blocking a thread.
    ///
    /// # Errors
    ///
    /// The last connection's, or the resolution's; or those of
    /// [`NetNs::run`], converted.
    pub async fn connect_tcp(
        &self,
        address: impl ToSocketAddrs + Send,
    ) -> io::Result<tokio::net::TcpStream> {
        let sockets = self.run(
            move || -> io::Result<Vec<(SocketAddr, tokio::net::TcpSocket)>> {
                (address.to_socket_addrs()?)
                    .map(|address| {
                        let socket = match address {
                            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                        };
                        Ok((address, socket))
                    })
                    .collect()
            },
        )??;
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
        for (address, socket) in sockets {
            match socket.connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// A tokio [`Command`](tokio::process::Command) for `program` that
    /// starts inside this namespace, as [`NetNs::command`] makes one.
    ///
    /// # Errors
    ///
    /// As [`NetNs::command`].
    pub fn tokio_command(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Result<tokio::process::Command, Error> {
        Ok(self.command(program)?.into())
    }
}
