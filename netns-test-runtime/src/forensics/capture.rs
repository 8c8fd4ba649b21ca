//! Packet capture: an `AF_PACKET` socket in each namespace of a test sees
//! every packet on every interface there, `lo` included, and the process's
//! capture thread writes each test's packets to one pcapng file, with an
//! interface block per namespace and interface (`test/lo`, `ns2/v1`).
//!
//! Nothing here exists unless capture is asked for: no socket, no thread.
//! Once it is, the process has threads for it, started outside every
//! test's namespace: the capture thread, and a pool of closers for the
//! packet sockets of finished tests. Closing a packet socket waits for an
//! RCU grace period (`synchronize_net()` in the kernel's `packet_release`,
//! unconditionally, some 15 ms), which no test should wait for; closes on
//! several threads share grace periods, so the pool keeps up with tests
//! that finish every millisecond, and the queue to it is bounded, so that
//! pending closes hold a bounded number of descriptors.
//!
//! The capture thread is fair and never stuck: each wakeup reads at most
//! [`BATCH`] packets from each socket, then reads its messages. A test's
//! capture is finished by the thread that finishes the test: the capture
//! thread hands it over, and that thread reads what is waiting for at most
//! [`FINISH_DRAIN`]. A test's file holds at most `NETNS_TEST_CAPTURE_LIMIT`
//! bytes of packets; those past it are counted, and the count is written in
//! an interface statistics block (`isb_ifdrop`, with a comment).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};

pub(crate) use super::capture_files::warn_once;
use super::capture_files::{self, Dir, stem_of};
use crate::error::Error;
use crate::fault::{self, Fault};
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

/// The most packets read from one socket per wakeup of the capture thread.
const BATCH: usize = 64;
/// How long finishing a kept capture reads what is still waiting.
const FINISH_DRAIN: Duration = Duration::from_millis(100);
/// How long a finishing test waits for the capture thread to hand its
/// capture over (it does within one wakeup).
const HANDOVER: Duration = Duration::from_secs(5);
/// The threads that close packet sockets, and how many sockets may wait
/// for them: beyond that, whoever closes one waits.
const CLOSERS: usize = 32;
const PENDING_CLOSES: usize = 64;

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
    /// A test is over: hand its capture over to the thread finishing it.
    Finish(u64, SyncSender<Box<TestCapture>>),
}

/// The process's capture thread: where to send it messages, and how to
/// wake it; and the queue to the closers.
struct Service {
    messages: Mutex<Sender<Message>>,
    wake: OwnedFd,
    closing: SyncSender<OwnedFd>,
}

static SERVICE: OnceLock<Service> = OnceLock::new();

/// Starts the capture thread and its closers, once per process, and
/// resolves the capture directory (warning once if the one asked for cannot
/// be used). Called on the thread that runs a test, outside the test's
/// namespace and before its body, so that none of the threads count among
/// a test's, and a body that changes the working directory changes nothing.
pub(crate) fn start_service() -> Result<(), Error> {
    static STARTING: Mutex<()> = Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if SERVICE.get().is_some() {
        return Ok(());
    }
    // Errors wait for the test's capture: a directory that cannot be
    // used fails no test.
    let _ = capture_files::dir();
    let (wake_r, wake) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|errno| capture_error("make the capture thread's wake-up pipe", errno))?;
    let (messages, inbox) = mpsc::channel();
    let (closing, to_close) = mpsc::sync_channel::<OwnedFd>(PENDING_CLOSES);
    let to_close = Arc::new(Mutex::new(to_close));
    let (started, ready) = mpsc::sync_channel(CLOSERS + 1);
    let spawn = |name: &str, stack: usize, body: Box<dyn FnOnce() + Send>| {
        let started = started.clone();
        thread::Builder::new()
            .name(name.into())
            .stack_size(stack)
            .spawn(move || {
                let _ = started.send(());
                body();
            })
            .map_err(|source| Error::SpawnThread {
                step: "capturing packets",
                source,
            })
    };
    for _ in 0..CLOSERS {
        let to_close = Arc::clone(&to_close);
        spawn(
            "netns-test-close",
            64 << 10,
            Box::new(move || {
                loop {
                    let next = to_close
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    // Closed with the queue unlocked: the other closers
                    // close theirs meanwhile, in the same grace period.
                    match next {
                        Ok(socket) => drop(socket),
                        Err(_) => return,
                    }
                }
            }),
        )?;
    }
    let closer = closing.clone();
    spawn(
        "netns-test-capture",
        2 << 20,
        Box::new(move || Captures::new(closer).run(&inbox, &wake_r)),
    )?;
    // All run, and are named, before any test's body starts.
    for _ in 0..=CLOSERS {
        let _ = ready.recv();
    }
    let _ = SERVICE.set(Service {
        messages: Mutex::new(messages),
        wake,
        closing,
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

impl Source {
    /// Closes the source: its rtnetlink socket at once, its packet socket
    /// on a closer (waiting while as many closes as the queue holds are
    /// pending).
    fn close(self, closing: &SyncSender<OwnedFd>) {
        let Source { socket, rtnl, .. } = self;
        drop(rtnl);
        if let Err(mpsc::SendError(socket)) = closing.send(socket) {
            drop(socket);
        }
    }

    /// How many packets the kernel dropped for this socket since the last
    /// call, its buffer being full (`PACKET_STATISTICS`).
    fn kernel_drops(&self) -> u64 {
        let mut stats = nix::libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut length = std::mem::size_of_val(&stats) as nix::libc::socklen_t;
        // SAFETY: `stats` and `length` are valid for writes, and `length`
        // is the size of `stats`, which is what PACKET_STATISTICS writes
        // for a socket without a TPACKET_V3 ring.
        let got = unsafe {
            nix::libc::getsockopt(
                self.socket.as_raw_fd(),
                nix::libc::SOL_PACKET,
                nix::libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut length,
            )
        };
        match got {
            0 => u64::from(stats.tp_drops),
            _ => 0,
        }
    }
}

/// One test's capture, into a partial file until it is kept.
pub(crate) struct Capture {
    id: u64,
    dir: &'static Dir,
    stem: String,
    partial: String,
    finished: Mutex<bool>,
}

/// The partial files of this process's captures that are being written:
/// never taken for the leftovers of a process that ended.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn set_live(partial: &str, live: bool) {
    let mut all = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    match live {
        true => all.push(partial.to_owned()),
        false => all.retain(|name| name != partial),
    }
}

/// One interface of a capture: its name, the packets written, and those
/// left out past the limit.
#[derive(Debug, Default)]
struct Interface {
    name: String,
    written: u64,
    left_out: u64,
}

/// What a finished capture holds: packets per interface, in the order the
/// interfaces were first seen, and what it could not hold.
#[derive(Debug, Default)]
struct Summary {
    interfaces: Vec<Interface>,
    limit: u64,
    /// Packets the kernel dropped, the capture falling behind.
    dropped: u64,
}

impl Summary {
    /// What the kept file holds, in a few words.
    fn describe(&self) -> String {
        let total: u64 = self.interfaces.iter().map(|i| i.written).sum();
        let left_out: u64 = self.interfaces.iter().map(|i| i.left_out).sum();
        let mut what = match total {
            0 => "no packets".to_owned(),
            _ => {
                let each: Vec<String> = self
                    .interfaces
                    .iter()
                    .filter(|i| i.written > 0)
                    .map(|i| format!("{} {}", i.name, i.written))
                    .collect();
                format!("{total} packets: {}", each.join(", "))
            }
        };
        if left_out > 0 {
            what.push_str(&format!(
                "; {left_out} more left out, past the limit of {} bytes (NETNS_TEST_CAPTURE_LIMIT)",
                self.limit
            ));
        }
        if self.dropped > 0 {
            what.push_str(&format!(
                "; {} dropped by the kernel, the capture falling behind",
                self.dropped
            ));
        }
        what
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("stem", &self.stem)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Starts capturing in the calling thread's namespace, labelled
    /// `test`, the packets of the test `name`. [`start_service`] must have
    /// run.
    pub(crate) fn start(name: &str, limit: u64) -> Result<Capture, Error> {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let dir = capture_files::dir()?;
        let stem = stem_of(name);
        let (output, partial) = dir.create_partial(&stem)?;
        let started = || {
            let output =
                PcapNgWriter::new(BufWriter::new(output)).map_err(|error| Error::Capture {
                    step: "write the capture file's header",
                    source: pcap_error(error),
                })?;
            let source = Source::here("test".to_owned())?;
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            let test = TestCapture::new(output, source, dir, partial.clone(), limit);
            send(Message::Open(id, Box::new(test)))?;
            Ok(id)
        };
        set_live(&partial, true);
        match started() {
            Ok(id) => Ok(Capture {
                id,
                dir,
                stem,
                partial,
                finished: Mutex::new(false),
            }),
            Err(error) => {
                set_live(&partial, false);
                dir.remove(&partial);
                Err(error)
            }
        }
    }

    /// Captures in `ns` too, labelled `label`.
    pub(crate) fn watch(&self, label: String, ns: &NetNs) -> Result<(), Error> {
        let source = ns.run(|| Source::here(label))??;
        send(Message::Watch(self.id, source))
    }

    /// Stops capturing and keeps the file or removes it, once; a kept file
    /// first gets what is still waiting, for at most [`FINISH_DRAIN`].
    /// Returns the kept file's path and a line that says what it holds.
    pub(crate) fn finish(&self, keep: bool) -> Result<Option<(PathBuf, String)>, Error> {
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        if std::mem::replace(&mut *finished, true) {
            return Ok(None);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        send(Message::Finish(self.id, reply))?;
        let test = answer.recv_timeout(HANDOVER).map_err(|_| Error::Capture {
            step: "take the test's capture over from the capture thread",
            source: std::io::ErrorKind::TimedOut.into(),
        })?;
        // From here on, the file is this thread's alone.
        set_live(&self.partial, false);
        let summary = test.finish(keep);
        let summary = match (summary, keep) {
            (Ok(summary), true) => summary,
            (result, _) => {
                self.dir.remove(&self.partial);
                return result.map(|_| None);
            }
        };
        let file = self
            .dir
            .keep(&self.partial, &format!("{}.pcapng", self.stem))?;
        Ok(Some((file, summary.describe())))
    }
}

/// In the test process, after the process that ran the test `name` ended
/// without finishing its capture: keeps what it wrote, if it holds a
/// packet, and says so.
pub(crate) fn salvage(name: &str) -> Option<String> {
    let dir = capture_files::dir().ok()?;
    let partial = {
        let live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        dir.partials_of(&stem_of(name))
            .into_iter()
            .find(|partial| !live.contains(partial))?
    };
    let note = match dir.packets_in(&partial) {
        Ok(0) => {
            dir.remove(&partial);
            "netns-test: no packets were captured before the process that ran it ended\n".into()
        }
        Ok(packets) => match dir.keep(&partial, &format!("{}.pcapng", stem_of(name))) {
            Ok(file) => format!(
                "netns-test: its packets, up to the end of the process that ran it ({packets} packets): {}\n",
                file.display()
            ),
            Err(error) => format!("netns-test: the capture it was writing: {error}\n"),
        },
        Err(error) => format!("netns-test: the capture it was writing: {error}\n"),
    };
    Some(note)
}

/// One test's file, sockets, and the interface blocks written so far.
struct TestCapture {
    output: Output,
    sources: Vec<Source>,
    /// (source, interface index) to the interface block's id.
    interfaces: HashMap<(usize, u32), u32>,
    summary: Summary,
    /// Bytes of packet blocks written.
    written: u64,
    dir: &'static Dir,
    partial: String,
    /// Why this capture stopped early.
    failed: Option<Error>,
}

impl TestCapture {
    fn new(
        output: Output,
        first: Source,
        dir: &'static Dir,
        partial: String,
        limit: u64,
    ) -> TestCapture {
        TestCapture {
            output,
            sources: vec![first],
            interfaces: HashMap::new(),
            summary: Summary {
                limit,
                ..Summary::default()
            },
            written: 0,
            dir,
            partial,
            failed: None,
        }
    }

    /// Writes at most `budget` packets waiting on source `index`; whether
    /// more may be waiting.
    fn drain(&mut self, index: usize, buffer: &mut [u8], budget: usize) -> Result<bool, Error> {
        let slow = fault::injected(Fault::SlowCapture);
        for _ in 0..budget {
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
                Err(Errno::EAGAIN) => return Ok(false),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(capture_error("read a captured packet", errno)),
            };
            if slow {
                thread::sleep(Duration::from_micros(100));
            }
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
                .unwrap_or_else(now);
            // On `lo`, each packet is seen leaving and arriving: keep one,
            // as libpcap does.
            if address.pkttype() == PACKET_OUTGOING && address.hatype() == ARPHRD_LOOPBACK {
                continue;
            }
            let ifindex = address.ifindex() as u32;
            let interface = self.interface(index, ifindex, address.hatype())?;
            let captured = length.min(buffer.len());
            // An enhanced packet block: 32 bytes around the padded data.
            let size = 32 + (captured as u64).next_multiple_of(4);
            let counts = &mut self.summary.interfaces[interface as usize];
            if self.written + size > self.summary.limit {
                counts.left_out += 1;
                continue;
            }
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
            self.written += size;
            self.summary.interfaces[interface as usize].written += 1;
        }
        Ok(true)
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
        self.summary.interfaces.push(Interface {
            name,
            ..Interface::default()
        });
        self.interfaces.insert((index, ifindex), id);
        Ok(id)
    }

    /// Writes at most `budget` packets from each source, and flushes the
    /// file; whether more may be waiting. A failure stops the capture: its
    /// sockets are closed, and the finish reports it.
    fn drain_some(
        &mut self,
        buffer: &mut [u8],
        budget: usize,
        closing: &SyncSender<OwnedFd>,
    ) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let mut more = false;
        let mut drained = (0..self.sources.len()).try_for_each(|index| {
            more |= self.drain(index, buffer, budget)?;
            Ok(())
        });
        if drained.is_ok() {
            drained = self.flush();
        }
        if let Err(error) = drained {
            self.fail(error, closing);
            return false;
        }
        more
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.output
            .get_mut()
            .flush()
            .map_err(|source| Error::Capture {
                step: "write the capture file",
                source,
            })
    }

    /// Stops the capture for `error`.
    fn fail(&mut self, error: Error, closing: &SyncSender<OwnedFd>) {
        self.failed = Some(error);
        for source in self.sources.drain(..) {
            source.close(closing);
        }
    }

    /// Ends the capture on the finishing thread: when it is to be kept,
    /// reads what is waiting (for at most [`FINISH_DRAIN`]) and writes how
    /// many packets were left out; closes its sockets.
    fn finish(mut self, keep: bool) -> Result<Summary, Error> {
        let closing = SERVICE.get().map(|service| service.closing.clone());
        let Some(closing) = closing else {
            return Err(Error::ThreadLost {
                step: "capturing packets",
            });
        };
        if keep && self.failed.is_none() {
            let deadline = Instant::now() + FINISH_DRAIN;
            let mut buffer = vec![0; SNAPLEN];
            while self.drain_some(&mut buffer, BATCH, &closing) && Instant::now() < deadline {}
            self.summary.dropped = self.sources.iter().map(Source::kernel_drops).sum();
            if let Err(error) = self.write_left_out().and_then(|()| self.flush()) {
                self.failed = Some(error);
            }
        }
        for source in self.sources.drain(..) {
            source.close(&closing);
        }
        match self.failed.take() {
            Some(error) => Err(error),
            None => Ok(std::mem::take(&mut self.summary)),
        }
    }

    /// An interface statistics block for each interface with packets left
    /// out past the limit: their count as `isb_ifdrop`, and a comment.
    fn write_left_out(&mut self) -> Result<(), Error> {
        let timestamp = now().as_nanos() as u64;
        for (id, interface) in self.summary.interfaces.iter().enumerate() {
            if interface.left_out == 0 {
                continue;
            }
            let comment = format!(
                "netns-test: {} packets left out, past this test's limit of {} bytes (NETNS_TEST_CAPTURE_LIMIT)",
                interface.left_out, self.summary.limit
            );
            let block = InterfaceStatisticsBlock {
                interface_id: id as u32,
                timestamp,
                options: vec![
                    InterfaceStatisticsOption::Comment(Cow::Owned(comment)),
                    InterfaceStatisticsOption::IsbIfDrop(interface.left_out),
                ],
            };
            self.output
                .write_pcapng_block(block)
                .map_err(|error| Error::Capture {
                    step: "write how many packets were left out to the capture file",
                    source: pcap_error(error),
                })?;
        }
        Ok(())
    }

    /// Ends a capture whose finishing thread stopped waiting for it.
    fn abandon(mut self, closing: &SyncSender<OwnedFd>) {
        for source in self.sources.drain(..) {
            source.close(closing);
        }
        set_live(&self.partial, false);
        self.dir.remove(&self.partial);
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The capture thread's state: every open test's capture.
struct Captures {
    tests: HashMap<u64, TestCapture>,
    closing: SyncSender<OwnedFd>,
    buffer: Vec<u8>,
}

impl Captures {
    fn new(closing: SyncSender<OwnedFd>) -> Captures {
        Captures {
            tests: HashMap::new(),
            closing,
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
                    test.fail(capture_error("wait for packets", errno), &self.closing);
                }
            }
            let mut drained = [0u8; 64];
            while read(wake, &mut drained).is_ok_and(|read| read > 0) {}
            // At most a batch from each socket, then the messages: a flood
            // on one test's sockets delays no other test's packets, and no
            // test's finish, by more than one round.
            let mut ready: Vec<u64> = ready
                .into_iter()
                .filter_map(|(id, readable)| readable.then_some(id))
                .collect();
            ready.dedup();
            for id in ready {
                if let Some(test) = self.tests.get_mut(&id) {
                    test.drain_some(&mut self.buffer, BATCH, &self.closing);
                }
            }
            while let Ok(message) = inbox.try_recv() {
                match message {
                    Message::Open(id, test) => {
                        self.tests.insert(id, *test);
                    }
                    Message::Watch(id, source) => match self.tests.get_mut(&id) {
                        Some(test) if test.failed.is_none() => test.sources.push(source),
                        _ => source.close(&self.closing),
                    },
                    Message::Finish(id, reply) => {
                        let Some(test) = self.tests.remove(&id) else {
                            continue;
                        };
                        if let Err(mpsc::SendError(test)) = reply.send(Box::new(test)) {
                            test.abandon(&self.closing);
                        }
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
