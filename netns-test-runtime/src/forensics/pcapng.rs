//! One test's pcapng file: its capture sockets, one per namespace, the
//! interfaces seen on them, and the packets read from them, in time order
//! across them all (`time_order.rs`), up to the test's limit; and what the
//! file holds, in a few words.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::thread;
use std::time::{Duration, Instant};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use nix::errno::Errno;
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};

use super::capture_files::Dir;
use super::time_order::{Held, SLACK, TimeOrder, watermark};
use crate::error::Error;
use crate::fault::{self, Fault};
use crate::netlink::{Request, Rtnl};
use crate::packet::service::BATCH;
use crate::packet::socket::{ARPHRD_LOOPBACK, Socket, now};

/// A capture file being written.
pub(super) type Output = PcapNgWriter<BufWriter<File>>;

/// The most of a packet that is kept, as tcpdump's default snap length.
pub(super) const SNAPLEN: usize = 262_144;

/// `ARPHRD_*` (`linux/if_arp.h`): the link types whose frames carry an
/// Ethernet header, and those that carry a bare IP packet.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_IP: [u16; 5] = [
    0xFFFE, // ARPHRD_NONE: tun, wireguard
    768,    // ARPHRD_TUNNEL: ipip
    769,    // ARPHRD_TUNNEL6
    776,    // ARPHRD_SIT
    778,    // ARPHRD_IPGRE
];

/// How long finishing a kept capture reads what is still waiting.
pub(super) const FINISH_DRAIN: Duration = Duration::from_millis(100);
/// The most bytes of packets a test holds for time order: past it, only
/// the sockets furthest behind are read, the others' packets waiting in
/// the kernel until they catch up.
const HELD_MAX: usize = 4 << 20;

/// One namespace's capture socket, and how to name its interfaces.
pub(super) struct Source {
    label: String,
    pub(super) socket: Socket,
    rtnl: Rtnl,
    /// The time before which it has given every packet it will give, but
    /// for the slack; `None` until it is first read.
    position: Option<Duration>,
}

impl Source {
    /// Opens a capture socket in the calling thread's network namespace.
    pub(super) fn here(label: String) -> Result<Source, Error> {
        let socket = Socket::open().map_err(|errno| {
            capture_error("open an AF_PACKET socket in the test's namespace", errno)
        })?;
        let rtnl = Rtnl::open().map_err(|source| Error::Netlink {
            step: "open rtnetlink to name captured interfaces".into(),
            source,
        })?;
        Ok(Source {
            label,
            socket,
            rtnl,
            position: None,
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

    /// Closes the source: its rtnetlink socket at once, its packet socket
    /// on a closer.
    pub(super) fn close(self) {
        let Source { socket, rtnl, .. } = self;
        drop(rtnl);
        socket.close_later();
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
pub(super) struct Summary {
    interfaces: Vec<Interface>,
    limit: u64,
    /// Packets the kernel dropped, the capture falling behind.
    dropped: u64,
}

impl Summary {
    /// What the kept file holds, in a few words.
    pub(super) fn describe(&self) -> String {
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

/// One test's file, sockets, and the interface blocks written so far.
pub(super) struct TestCapture {
    output: Output,
    pub(super) sources: Vec<Source>,
    /// (source, interface index) to the interface block's id.
    interfaces: HashMap<(usize, u32), u32>,
    summary: Summary,
    /// Bytes of packet blocks written.
    written: u64,
    /// Packets read, not yet written.
    order: TimeOrder,
    /// When the packet thread is to read the sockets again, so that
    /// packets held are written though no socket is readable.
    pub(super) due: Option<Instant>,
    pub(super) dir: &'static Dir,
    pub(super) partial: String,
    /// Why this capture stopped early.
    pub(super) failed: Option<Error>,
}

impl TestCapture {
    pub(super) fn new(
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
            order: TimeOrder::default(),
            due: None,
            dir,
            partial,
            failed: None,
        }
    }

    /// Reads at most `budget` packets waiting on source `index`, and holds
    /// them; whether more may be waiting.
    fn drain(&mut self, index: usize, buffer: &mut [u8], budget: usize) -> Result<bool, Error> {
        let slow = fault::injected(Fault::SlowCapture);
        let started = now();
        let mut last = None;
        for _ in 0..budget {
            let received = self.sources[index].socket.receive(buffer);
            let frame = match received {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    // Never back: a clock set back makes packets late,
                    // not held until it catches up.
                    let position = &mut self.sources[index].position;
                    *position = (*position).max(Some(started));
                    return Ok(false);
                }
                Err(errno) => return Err(capture_error("read a captured packet", errno)),
            };
            if slow {
                thread::sleep(Duration::from_micros(100));
            }
            last = Some(frame.timestamp);
            // On `lo`, each packet is seen leaving and arriving: keep one,
            // as libpcap does.
            if frame.outgoing && frame.hatype == ARPHRD_LOOPBACK {
                continue;
            }
            let interface = self.interface(index, frame.ifindex, frame.hatype)?;
            let captured = frame.length.min(buffer.len());
            // Past the limit now, past it when its turn comes.
            if self.written + block_size(captured) > self.summary.limit {
                self.summary.interfaces[interface as usize].left_out += 1;
                continue;
            }
            self.order.hold(Held {
                timestamp: frame.timestamp,
                interface,
                length: frame.length as u32,
                data: buffer[..captured].to_vec(),
            });
        }
        let position = &mut self.sources[index].position;
        *position = last.max(*position);
        Ok(true)
    }

    /// Writes the packets held up to `watermark`, in time order, as many
    /// as the limit takes; counts the others.
    fn write_held(&mut self, watermark: Duration) -> Result<(), Error> {
        while let Some(given) = self.order.next(watermark) {
            let packet = given.packet;
            let size = block_size(packet.data.len());
            let counts = &mut self.summary.interfaces[packet.interface as usize];
            if self.written + size > self.summary.limit {
                counts.left_out += 1;
                continue;
            }
            let mut options = Vec::new();
            if given.late {
                let comment = format!(
                    "netns-test: read after a later packet was written; the kernel stamped it {:?} earlier",
                    given.timestamp - packet.timestamp
                );
                options.push(EnhancedPacketOption::Comment(Cow::Owned(comment)));
            }
            let block = EnhancedPacketBlock {
                interface_id: packet.interface,
                timestamp: given.timestamp,
                original_len: packet.length,
                data: Cow::Borrowed(&packet.data),
                options,
            };
            self.output
                .write_pcapng_block(block)
                .map_err(|error| Error::Capture {
                    step: "write a packet to the capture file",
                    source: pcap_error(error),
                })?;
            self.written += size;
            counts.written += 1;
        }
        Ok(())
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

    /// Reads at most `budget` packets from each source, and writes those
    /// no source can still give an earlier packet than; flushes the file.
    /// Returns whether more may be waiting. With [`HELD_MAX`] bytes held,
    /// reads only the sources furthest behind. A failure stops the
    /// capture: its sockets are closed, and the finish reports it.
    pub(super) fn drain_some(&mut self, buffer: &mut [u8], budget: usize) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let full = self.order.bytes() >= HELD_MAX;
        let behind = self.sources.iter().map(|source| source.position).min();
        let mut more = false;
        let mut drained = (0..self.sources.len()).try_for_each(|index| {
            if full && Some(self.sources[index].position) > behind {
                more = true;
                return Ok(());
            }
            more |= self.drain(index, buffer, budget)?;
            Ok(())
        });
        if drained.is_ok() {
            let positions = self.sources.iter().filter_map(|source| source.position);
            drained = self
                .write_held(watermark(positions))
                .and_then(|()| self.flush());
        }
        if let Err(error) = drained {
            self.fail(error);
            return false;
        }
        self.due = (!self.order.is_empty()).then(|| Instant::now() + SLACK);
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
    pub(super) fn fail(&mut self, error: Error) {
        self.failed = Some(error);
        self.due = None;
        self.close();
    }

    /// Closes its sockets.
    pub(super) fn close(&mut self) {
        for source in self.sources.drain(..) {
            source.close();
        }
    }

    /// Ends the capture on the finishing thread: when it is to be kept,
    /// reads what is waiting (for at most [`FINISH_DRAIN`]), writes every
    /// packet held and how many packets were left out; closes its sockets.
    pub(super) fn finish(mut self, keep: bool) -> Result<Summary, Error> {
        if keep && self.failed.is_none() {
            let deadline = Instant::now() + FINISH_DRAIN;
            let mut buffer = vec![0; SNAPLEN];
            while self.drain_some(&mut buffer, BATCH) && Instant::now() < deadline {}
            self.summary.dropped = self
                .sources
                .iter()
                .map(|source| source.socket.kernel_drops())
                .sum();
            if self.failed.is_none() {
                let written = self
                    .write_held(Duration::MAX)
                    .and_then(|()| self.write_left_out())
                    .and_then(|()| self.flush());
                if let Err(error) = written {
                    self.failed = Some(error);
                }
            }
        }
        self.close();
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
}

/// An enhanced packet block's size: 32 bytes around the padded data.
fn block_size(captured: usize) -> u64 {
    32 + (captured as u64).next_multiple_of(4)
}

pub(super) fn capture_error(step: &'static str, errno: Errno) -> Error {
    Error::Capture {
        step,
        source: errno.into(),
    }
}

pub(super) fn pcap_error(error: pcap_file::PcapError) -> std::io::Error {
    match error {
        pcap_file::PcapError::IoError(error) => error,
        other => std::io::Error::other(other.to_string()),
    }
}
