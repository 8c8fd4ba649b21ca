//! Packets read from several capture sockets, put in time order.
//!
//! Each socket gives its packets in about the order the kernel stamped
//! them, but a test has a socket per namespace, read in turn, a batch at a
//! time: written as read, a file would go back in time at every turn.
//! Packets read are held, earliest first, and given out only up to a
//! watermark, a time before which no socket can still give one: for a
//! socket read until it had no more, the time its reading started; for one
//! cut off (by the batch, or left unread), its last packet's stamp. A
//! packet may reach its socket a little after the kernel stamped it (its
//! stamp is taken where it enters the stack), so the watermark stays
//! [`SLACK`] behind. One later still is given out with the last stamp
//! given, and its own is kept beside it: the file never goes back in time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// How far the watermark stays behind the sockets.
pub(super) const SLACK: Duration = Duration::from_millis(2);

/// A packet read, waiting for the watermark.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Held {
    /// The kernel's stamp.
    pub(super) timestamp: Duration,
    /// Its interface block's id.
    pub(super) interface: u32,
    /// Its whole length.
    pub(super) length: u32,
    /// What was captured of it.
    pub(super) data: Vec<u8>,
}

/// A held packet, ordered by its stamp, then by when it was read.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    timestamp: Duration,
    read: u64,
    packet: Held,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.timestamp, self.read).cmp(&(other.timestamp, other.read))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The packets held, and the last stamp given out.
#[derive(Debug, Default)]
pub(super) struct TimeOrder {
    held: BinaryHeap<Reverse<Entry>>,
    reads: u64,
    bytes: usize,
    given: Duration,
}

impl TimeOrder {
    /// Holds `packet` until the watermark passes it.
    pub(super) fn hold(&mut self, packet: Held) {
        self.bytes += packet.data.len();
        self.reads += 1;
        self.held.push(Reverse(Entry {
            timestamp: packet.timestamp,
            read: self.reads,
            packet,
        }));
    }

    /// The bytes of packet data held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The earliest packet held, if its stamp is at most `watermark`, with
    /// the stamp to write it with: its own, or the last one given out when
    /// its own is earlier (it came late), in which case it is `late`.
    pub(super) fn next(&mut self, watermark: Duration) -> Option<Given> {
        if self.held.peek()?.0.timestamp > watermark {
            return None;
        }
        let Reverse(entry) = self.held.pop()?;
        self.bytes -= entry.packet.data.len();
        let late = entry.timestamp < self.given;
        self.given = self.given.max(entry.timestamp);
        Some(Given {
            timestamp: self.given,
            late,
            packet: entry.packet,
        })
    }
}

/// A packet given out in time order.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Given {
    /// The stamp to write it with.
    pub(super) timestamp: Duration,
    /// Whether it came after a later packet was given out: `timestamp` is
    /// then that packet's, and its own is in `packet`.
    pub(super) late: bool,
    pub(super) packet: Held,
}

/// The watermark of sockets at `positions`: each the time before which it
/// has given every packet it will give.
pub(super) fn watermark(positions: impl Iterator<Item = Duration>) -> Duration {
    positions.min().unwrap_or_default().saturating_sub(SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(micros: u64, interface: u32) -> Held {
        Held {
            timestamp: Duration::from_micros(micros),
            interface,
            length: 1,
            data: vec![interface as u8],
        }
    }

    fn given(order: &mut TimeOrder, watermark: Duration) -> Vec<(u64, u32, bool)> {
        std::iter::from_fn(|| order.next(watermark))
            .map(|given| {
                let micros = given.timestamp.as_micros() as u64;
                (micros, given.packet.interface, given.late)
            })
            .collect()
    }

    #[test]
    fn packets_come_out_in_time_order_up_to_the_watermark() {
        let mut order = TimeOrder::default();
        // Two sockets' batches, read in turn.
        for (micros, interface) in [(10, 0), (30, 0), (50, 0), (20, 1), (40, 1), (40, 2)] {
            order.hold(packet(micros, interface));
        }
        assert_eq!(order.bytes(), 6);
        assert_eq!(
            given(&mut order, Duration::from_micros(40)),
            [
                (10, 0, false),
                (20, 1, false),
                (30, 0, false),
                (40, 1, false),
                (40, 2, false)
            ]
        );
        assert_eq!(order.bytes(), 1);
        assert!(!order.is_empty());
        assert_eq!(given(&mut order, Duration::MAX), [(50, 0, false)]);
        assert!(order.is_empty());
    }

    #[test]
    fn a_packet_that_comes_late_keeps_the_file_in_order() {
        let mut order = TimeOrder::default();
        order.hold(packet(100, 0));
        assert_eq!(given(&mut order, Duration::MAX), [(100, 0, false)]);
        order.hold(packet(90, 1));
        let late = order.next(Duration::MAX).expect("a packet");
        assert!(late.late);
        assert_eq!(late.timestamp, Duration::from_micros(100));
        assert_eq!(late.packet.timestamp, Duration::from_micros(90));
    }

    #[test]
    fn the_watermark_is_the_slowest_socket_less_the_slack() {
        let at = Duration::from_millis;
        assert_eq!(watermark([at(10), at(7), at(12)].into_iter()), at(5));
        assert_eq!(watermark([at(1)].into_iter()), Duration::ZERO);
        assert_eq!(watermark(std::iter::empty()), Duration::ZERO);
    }
}
