//! `AF_PACKET` sockets and the one thread per process that reads them.
//!
//! - `socket.rs`: a packet socket in the calling thread's namespace, and
//!   the frames read from it, each with its timestamp and link address;
//! - `port.rs`: a socket bound to one interface, with each frame's virtio
//!   header, that a wire's relay reads and sends on;
//! - `service.rs`: the packet thread, started outside every test's
//!   namespace, that waits on the sockets of its clients (the capture,
//!   which writes them to pcapng in `forensics`) and calls each when its
//!   sockets are readable; and the closers that take the ~15 ms a packet
//!   socket's close waits for off the tests' threads.
//!
//! Nothing here knows what its clients do with the frames: a client
//! registers with the service, never the other way round.

pub(crate) mod port;
pub(crate) mod service;
pub(crate) mod socket;
