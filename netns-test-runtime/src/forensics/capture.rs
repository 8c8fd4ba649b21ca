//! Packet capture: an `AF_PACKET` socket in each namespace of a test sees
//! every packet on every interface there, `lo` included, and the process's
//! capture thread writes each test's packets to one pcapng file, with an
//! interface block per namespace and interface (`test/lo`, `ns2/v1`).
//!
//! Nothing here exists unless capture is asked for: no socket, no thread.
//! Once it is, the process has two threads for it, started outside every
//! test's namespace: the capture thread, and one that closes the packet
//! sockets of finished tests (a close waits for an RCU grace period,
//! `synchronize_net`, some 15 ms, which no test should wait for).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType,
    recvmsg, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{pipe2, read, write};
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

use crate::error::Error;
use crate::netlink::{Request, Rtnl};
use crate::netns::NetNs;

/// The most of a packet that is kept, as tcpdump's default snap length.
const SNAPLEN: usize = 262_144;

/// `PACKET_OUTGOING` (`linux/if_packet.h`): a packet this host sent.
const PACKET_OUTGOING: u8 = 4;
/// `ARPHRD_*` (`linux/if_arp.h`): the link types whose frames carry an
/// Ethernet header, and those that carry a bare IP packet.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_IP: [u16; 5] = [
    0xFFFE, // ARPHRD_NONE: tun, wireguard
    768,    // ARPHRD_TUNNEL: ipip
    769,    // ARPHRD_TUNNEL6
    776,    // ARPHRD_SIT
    778,    // ARPHRD_IPGRE
];

type Output = PcapNgWriter<BufWriter<File>>;

/// One namespace's capture socket, and how to name its interfaces.
struct Source {
    label: String,
    socket: OwnedFd,
    rtnl: Rtnl,
}

impl Source {
    /// Opens a capture socket in the calling thread's network namespace.
    fn here(label: String) -> Result<Source, Error> {
        let socket = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::EthAll,
        )
        .map_err(|errno| {
            capture_error("open an AF_PACKET socket in the test's namespace", errno)
        })?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
            .map_err(|errno| capture_error("ask for packet timestamps (SO_TIMESTAMPNS)", errno))?;
        // A larger buffer where the process may have one; the default
        // otherwise, which the capture thread drains as packets come.
        let _ = setsockopt(&socket, sockopt::RcvBufForce, &(8 << 20));
        let rtnl = Rtnl::open().map_err(|source| Error::Netlink {
            step: "open rtnetlink to name captured interfaces".into(),
            source,
        })?;
        Ok(Source {
            label,
            socket,
            rtnl,
        })
    }

    /// The name of interface `index` in this source's namespace.
    fn name(&mut self, index: u32) -> String {
        let mut message = LinkMessage::default();
        message.header.index = index;
        let answers = self
            .rtnl
            .request(RouteNetlinkMessage::GetLink(message), Request::Ack);
        let name = answers.ok().and_then(|answers| {
            answers.into_iter().find_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => {
                    link.attributes
                        .into_iter()
                        .find_map(|attribute| match attribute {
                            LinkAttribute::IfName(name) => Some(name),
                            _ => None,
                        })
                }
                _ => None,
            })
        });
        let name = name.unwrap_or_else(|| format!("if{index}"));
        format!("{}/{name}", self.label)
    }
}

/// What the capture thread is told.
enum Message {
    /// A test's capture starts.
    Open(u64, Box<TestCapture>),
    /// A test made another namespace.
    Watch(u64, Source),
    /// A test is over: write out what is waiting, and answer.
    Finish(u64, SyncSender<Result<Summary, Error>>),
}

/// The process's capture thread: where to send it messages, and how to
/// wake it.
struct Service {
    messages: Mutex<Sender<Message>>,
    wake: OwnedFd,
}

static SERVICE: OnceLock<Service> = OnceLock::new();

/// Starts the capture thread and its closer, once per process. Called on
/// the thread that runs a test, outside the test's namespace, so that the
/// two never count among a test's threads.
pub(crate) fn start_service() -> Result<(), Error> {
    static STARTING: Mutex<()> = Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if SERVICE.get().is_some() {
        return Ok(());
    }
    let (wake_r, wake) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|errno| capture_error("make the capture thread's wake-up pipe", errno))?;
    let (messages, inbox) = mpsc::channel();
    let (to_close, closing) = mpsc::channel::<Vec<Source>>();
    let (started, ready) = mpsc::sync_channel(2);
    let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
        let started = started.clone();
        thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _ = started.send(());
                body();
            })
            .map_err(|source| Error::SpawnThread {
                step: "capturing packets",
                source,
            })
    };
    spawn(
        "netns-test-close",
        Box::new(move || closing.iter().for_each(drop)),
    )?;
    spawn(
        "netns-test-capture",
        Box::new(move || Captures::new(to_close).run(&inbox, &wake_r)),
    )?;
    // Both run, and are named, before any test's body starts.
    let _ = (ready.recv(), ready.recv());
    let _ = SERVICE.set(Service {
        messages: Mutex::new(messages),
        wake,
    });
    Ok(())
}

fn send(message: Message) -> Result<(), Error> {
    let lost = || Error::ThreadLost {
        step: "capturing packets",
    };
    let service = SERVICE.get().ok_or_else(lost)?;
    let sent = service
        .messages
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send(message);
    sent.map_err(|_| lost())?;
    let _ = write(&service.wake, &[0]);
    Ok(())
}

/// One test's capture, into `<file>.partial` until it is kept.
pub(crate) struct Capture {
    id: u64,
    file: PathBuf,
    partial: PathBuf,
    finished: Mutex<bool>,
}

/// What a finished capture holds: packets per interface, in the order the
/// interfaces were first seen.
#[derive(Debug, Default)]
struct Summary {
    interfaces: Vec<(String, u64)>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Starts capturing in the calling thread's namespace, labelled
    /// `test`, into `file`. [`start_service`] must have run.
    pub(crate) fn start(file: PathBuf) -> Result<Capture, Error> {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let failed = |step: &'static str| move |source| Error::Capture { step, source };
        let partial = partial_of(&file);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(failed(
                "create the capture directory (set NETNS_TEST_CAPTURE_DIR to a writable one)",
            ))?;
        }
        let output = File::create(&partial).map_err(failed(
            "create the capture file (set NETNS_TEST_CAPTURE_DIR to a writable directory)",
        ))?;
        let output = PcapNgWriter::new(BufWriter::new(output))
            .map_err(|error| failed("write the capture file's header")(pcap_error(error)))?;
        let source = Source::here("test".to_owned())?;
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        send(Message::Open(
            id,
            Box::new(TestCapture::new(output, source)),
        ))?;
        Ok(Capture {
            id,
            file,
            partial,
            finished: Mutex::new(false),
        })
    }

    /// Captures in `ns` too, labelled `label`.
    pub(crate) fn watch(&self, label: String, ns: &NetNs) -> Result<(), Error> {
        let source = ns.run(|| Source::here(label))??;
        send(Message::Watch(self.id, source))
    }

    /// Stops capturing, after every packet already received is written,
    /// and keeps the file or removes it, once. Returns the kept file's path
    /// and a line that says what it holds.
    pub(crate) fn finish(&self, keep: bool) -> Result<Option<(PathBuf, String)>, Error> {
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        if std::mem::replace(&mut *finished, true) {
            return Ok(None);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        send(Message::Finish(self.id, reply))?;
        let summary = answer.recv().unwrap_or(Err(Error::ThreadLost {
            step: "capturing packets",
        }));
        let summary = match (summary, keep) {
            (Ok(summary), true) => summary,
            (result, _) => {
                let _ = std::fs::remove_file(&self.partial);
                return result.map(|_| None);
            }
        };
        std::fs::rename(&self.partial, &self.file).map_err(|source| Error::Capture {
            step: "keep the capture file",
            source,
        })?;
        let total: u64 = summary.interfaces.iter().map(|(_, count)| count).sum();
        let per_interface: Vec<String> = summary
            .interfaces
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        let what = match per_interface.is_empty() {
            true => "no packets".to_owned(),
            false => format!("{total} packets: {}", per_interface.join(", ")),
        };
        Ok(Some((self.file.clone(), what)))
    }
}

/// One test's file, sockets, and the interface blocks written so far.
struct TestCapture {
    output: Output,
    sources: Vec<Source>,
    /// (source, interface index) to the interface block's id.
    interfaces: HashMap<(usize, u32), u32>,
    summary: Summary,
    /// Why this capture stopped early.
    failed: Option<Error>,
}

impl TestCapture {
    fn new(output: Output, first: Source) -> TestCapture {
        TestCapture {
            output,
            sources: vec![first],
            interfaces: HashMap::new(),
            summary: Summary::default(),
            failed: None,
        }
    }

    /// Writes every packet waiting on source `index`.
    fn drain(&mut self, index: usize, buffer: &mut [u8]) -> Result<(), Error> {
        loop {
            let fd = self.sources[index].socket.as_raw_fd();
            let mut control = nix::cmsg_space!(TimeSpec);
            let mut iov = [IoSliceMut::new(buffer)];
            let received = recvmsg::<LinkAddr>(
                fd,
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            );
            let message = match received {
                Ok(message) => message,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(capture_error("read a captured packet", errno)),
            };
            let length = message.bytes;
            let Some(address) = message.address else {
                continue;
            };
            let timestamp = message
                .cmsgs()
                .ok()
                .and_then(|mut cmsgs| {
                    cmsgs.find_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmTimestampns(time) => {
                            Some(Duration::new(time.tv_sec() as u64, time.tv_nsec() as u32))
                        }
                        _ => None,
                    })
                })
                .unwrap_or_else(|| {
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                });
            // On `lo`, each packet is seen leaving and arriving: keep one,
            // as libpcap does.
            if address.pkttype() == PACKET_OUTGOING && address.hatype() == ARPHRD_LOOPBACK {
                continue;
            }
            let ifindex = address.ifindex() as u32;
            let interface = self.interface(index, ifindex, address.hatype())?;
            let captured = length.min(buffer.len());
            let packet = EnhancedPacketBlock {
                interface_id: interface,
                timestamp,
                original_len: length as u32,
                data: Cow::Borrowed(&buffer[..captured]),
                options: Vec::new(),
            };
            self.output
                .write_pcapng_block(packet)
                .map_err(|error| Error::Capture {
                    step: "write a packet to the capture file",
                    source: pcap_error(error),
                })?;
            self.summary.interfaces[interface as usize].1 += 1;
        }
    }

    /// The id of the interface block for `ifindex` of source `index`,
    /// written when the interface is first seen.
    fn interface(&mut self, index: usize, ifindex: u32, hatype: u16) -> Result<u32, Error> {
        if let Some(&id) = self.interfaces.get(&(index, ifindex)) {
            return Ok(id);
        }
        let name = self.sources[index].name(ifindex);
        let linktype = match hatype {
            ARPHRD_ETHER | ARPHRD_LOOPBACK => DataLink::ETHERNET,
            hatype if ARPHRD_IP.contains(&hatype) => DataLink::RAW,
            _ => DataLink::ETHERNET,
        };
        let block = InterfaceDescriptionBlock {
            linktype,
            snaplen: SNAPLEN as u32,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(name.clone())),
                // Timestamps in nanoseconds, as pcap-file writes them.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        self.output
            .write_pcapng_block(block)
            .map_err(|error| Error::Capture {
                step: "write an interface to the capture file",
                source: pcap_error(error),
            })?;
        let id = self.summary.interfaces.len() as u32;
        self.summary.interfaces.push((name, 0));
        self.interfaces.insert((index, ifindex), id);
        Ok(id)
    }

    /// Writes out everything waiting on every source, and flushes the file.
    fn drain_all(&mut self, buffer: &mut [u8]) {
        if self.failed.is_some() {
            return;
        }
        let mut drained = (0..self.sources.len()).try_for_each(|index| self.drain(index, buffer));
        if drained.is_ok() {
            drained = self
                .output
                .get_mut()
                .flush()
                .map_err(|source| Error::Capture {
                    step: "write the capture file",
                    source,
                });
        }
        self.failed = drained.err();
    }
}

/// The capture thread's state: every open test's capture.
struct Captures {
    tests: HashMap<u64, TestCapture>,
    to_close: Sender<Vec<Source>>,
    buffer: Vec<u8>,
}

impl Captures {
    fn new(to_close: Sender<Vec<Source>>) -> Captures {
        Captures {
            tests: HashMap::new(),
            to_close,
            buffer: vec![0; SNAPLEN],
        }
    }

    fn run(mut self, inbox: &Receiver<Message>, wake: &OwnedFd) {
        loop {
            let (ready, polled): (Vec<(u64, bool)>, _) = {
                let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
                let mut owners = Vec::new();
                for (&id, test) in &self.tests {
                    for source in &test.sources {
                        fds.push(PollFd::new(source.socket.as_fd(), PollFlags::POLLIN));
                        owners.push(id);
                    }
                }
                let polled = poll(&mut fds, PollTimeout::NONE);
                let readable = fds[1..].iter().map(|fd| fd.any().unwrap_or(false));
                (owners.into_iter().zip(readable).collect(), polled)
            };
            if let Err(errno) = polled.or_else(|errno| match errno {
                Errno::EINTR => Ok(0),
                errno => Err(errno),
            }) {
                // Nothing can be waited for: stop every capture, each of
                // which reports why when it finishes.
                for test in self.tests.values_mut() {
                    test.failed = Some(capture_error("wait for packets", errno));
                    let _ = self.to_close.send(std::mem::take(&mut test.sources));
                }
            }
            let mut drained = [0u8; 64];
            while read(wake, &mut drained).is_ok_and(|read| read > 0) {}
            for id in ready
                .into_iter()
                .filter_map(|(id, readable)| readable.then_some(id))
            {
                if let Some(test) = self.tests.get_mut(&id) {
                    test.drain_all(&mut self.buffer);
                }
            }
            while let Ok(message) = inbox.try_recv() {
                match message {
                    Message::Open(id, test) => {
                        self.tests.insert(id, *test);
                    }
                    Message::Watch(id, source) => match self.tests.get_mut(&id) {
                        Some(test) if test.failed.is_none() => test.sources.push(source),
                        _ => drop(self.to_close.send(vec![source])),
                    },
                    Message::Finish(id, reply) => {
                        let Some(mut test) = self.tests.remove(&id) else {
                            continue;
                        };
                        test.drain_all(&mut self.buffer);
                        let summary = match test.failed.take() {
                            Some(error) => Err(error),
                            None => Ok(std::mem::take(&mut test.summary)),
                        };
                        let _ = reply.send(summary);
                        let _ = self.to_close.send(std::mem::take(&mut test.sources));
                    }
                }
            }
        }
    }
}

fn capture_error(step: &'static str, errno: Errno) -> Error {
    Error::Capture {
        step,
        source: errno.into(),
    }
}

fn pcap_error(error: pcap_file::PcapError) -> std::io::Error {
    match error {
        pcap_file::PcapError::IoError(error) => error,
        other => std::io::Error::other(other.to_string()),
    }
}

/// Where a capture into `file` is written until it is kept.
fn partial_of(file: &Path) -> PathBuf {
    file.with_extension("pcapng.partial")
}

/// Keeps what a capture into `file` that never finished wrote (its process
/// died): whether there was one.
pub(crate) fn keep_partial(file: &Path) -> bool {
    std::fs::rename(partial_of(file), file).is_ok()
}

/// Where the capture of the test `name` goes: `NETNS_TEST_CAPTURE_DIR`, or
/// `netns-test-captures` in the cargo profile directory the test binary is
/// in (`target/debug`), then a directory named after the binary.
pub(crate) fn file_for(dir: Option<PathBuf>, exe: &Path, name: &str) -> PathBuf {
    let binary = exe
        .file_name()
        .map(|file| file.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Cargo names a test binary `<name>-<16 hex digits>`.
    let binary = match binary.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem.to_owned()
        }
        _ => binary,
    };
    let dir = dir.unwrap_or_else(|| {
        // `target/<profile>/deps/<binary>` or `target/<profile>/examples/<binary>`.
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        profile.join("netns-test-captures")
    });
    dir.join(binary)
        .join(format!("{}.pcapng", name.replace("::", ".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_the_binary_and_the_test() {
        let exe = Path::new("/src/target/debug/deps/topology-0123456789abcdef");
        assert_eq!(
            file_for(None, exe, "fixture::fails"),
            Path::new("/src/target/debug/netns-test-captures/topology/fixture.fails.pcapng")
        );
        assert_eq!(
            file_for(Some("/tmp/caps".into()), exe, "t"),
            Path::new("/tmp/caps/topology/t.pcapng")
        );
        let unhashed = Path::new("/x/bin/my-tool");
        assert_eq!(
            file_for(Some("/c".into()), unhashed, "a::b"),
            Path::new("/c/my-tool/a.b.pcapng")
        );
    }
}
