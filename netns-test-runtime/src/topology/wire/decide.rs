//! The relay's decisions for one direction of a wire, apart from any
//! socket: which frames are control frames, which flow a data frame is of,
//! the seeded draws, and the pipeline of [`Conditions`] over time.
//!
//! A draw is a pure function of the test's seed, the wire, the direction,
//! the packet's flow and its index in that flow: the same seed and the same
//! traffic give the same decisions on every run, whatever other flows and
//! control frames interleave with it, and a retransmission (the flow's next
//! index) draws anew. A flow is the protocol, the addresses and the ports,
//! but a port in the kernel's default ephemeral range (32768 to 60999) is
//! left out where the other is not: a client's port changes from run to
//! run, a server's does not.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::conditions::Conditions;

/// The length of `struct virtio_net_hdr`, which precedes every frame a
/// socket with `PACKET_VNET_HDR` reads or writes.
pub(super) const VNET_HDR: usize = 10;

/// What a draw decides: each kind of decision draws its own number.
#[derive(Debug, Clone, Copy)]
enum Salt {
    Loss = 1,
    Duplicate = 2,
    Jitter = 3,
    Reorder = 4,
}

/// One step of splitmix64: a good 64-bit mix, and the same everywhere.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of `bytes`: a hash that is the same on every run and machine
/// (std's is keyed at random).
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where a direction's draws come from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Draws {
    /// The test's seed, the wire and the direction, mixed.
    base: u64,
}

impl Draws {
    pub(super) fn new(seed: u64, wire: u64, direction: u64) -> Draws {
        Draws {
            base: mix(mix(mix(seed) ^ wire) ^ direction),
        }
    }

    /// A number in `0.0..1.0` for packet `index` of `flow`.
    fn unit(&self, flow: u64, index: u64, salt: Salt) -> f64 {
        let drawn = mix(mix(mix(self.base ^ flow) ^ index) ^ salt as u64);
        (drawn >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a frame is, for the draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A frame that keeps the link working: ARP, neighbour and router
    /// discovery, MLD, IGMP. It draws nothing.
    Control,
    /// A data frame, of this flow.
    Data(u64),
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_IGMP: u8 = 2;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// The kernel's default ephemeral ports (`net.ipv4.ip_local_port_range`).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// Classifies an Ethernet frame (without its virtio header).
pub(super) fn classify(frame: &[u8]) -> Kind {
    let Some(ethertype) = be16(frame, 12) else {
        return Kind::Control;
    };
    let ip = &frame[14..];
    match ethertype {
        ETH_P_ARP => Kind::Control,
        ETH_P_IP => match ip.get(9) {
            Some(&IPPROTO_IGMP) => Kind::Control,
            Some(&protocol) => {
                let header = usize::from(ip[0] & 0x0f) * 4;
                flow(ethertype, protocol, ip.get(12..20), ip.get(header..))
            }
            None => Kind::Data(fnv(&ethertype.to_be_bytes())),
        },
        ETH_P_IPV6 => match ip.get(6) {
            // Hop-by-hop options: MLD, router alerts.
            Some(&IPPROTO_HOPOPTS) => Kind::Control,
            Some(&IPPROTO_ICMPV6) => match ip.get(40) {
                // MLD queries and reports (130 to 132, 143), router and
                // neighbour discovery (133 to 137).
                Some(130..=137 | 143) => Kind::Control,
                _ => flow(ethertype, IPPROTO_ICMPV6, ip.get(8..40), ip.get(40..)),
            },
            Some(&protocol) => flow(ethertype, protocol, ip.get(8..40), ip.get(40..)),
            None => Kind::Data(fnv(&ethertype.to_be_bytes())),
        },
        other => Kind::Data(fnv(&other.to_be_bytes())),
    }
}

/// The flow of an IP packet: its protocol, its addresses, and its ports
/// where it has them, a client's ephemeral port left out.
fn flow(ethertype: u16, protocol: u8, addresses: Option<&[u8]>, transport: Option<&[u8]>) -> Kind {
    let mut key = Vec::with_capacity(48);
    key.extend(ethertype.to_be_bytes());
    key.push(protocol);
    key.extend(addresses.unwrap_or_default());
    if matches!(protocol, IPPROTO_TCP | IPPROTO_UDP) {
        let ports =
            transport.and_then(|transport| Some((be16(transport, 0)?, be16(transport, 2)?)));
        if let Some((source, destination)) = ports {
            let (source, destination) = match (
                EPHEMERAL.contains(&source),
                EPHEMERAL.contains(&destination),
            ) {
                (true, false) => (0, destination),
                (false, true) => (source, 0),
                _ => (source, destination),
            };
            key.extend(source.to_be_bytes());
            key.extend(destination.to_be_bytes());
        }
    }
    Kind::Data(fnv(&key))
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// The bytes a frame takes on the wire: a segmentation offload's
/// super-frame (`virtio_net_hdr.gso_type` set) counts as the frames it
/// stands for, each with the headers repeated.
pub(super) fn wire_bytes(vnet: &[u8], frame_len: usize) -> u64 {
    let gso_type = vnet.get(1).copied().unwrap_or(0);
    let header = usize::from(u16::from_ne_bytes([vnet[2], vnet[3]]));
    let segment = usize::from(u16::from_ne_bytes([vnet[4], vnet[5]]));
    if gso_type == 0 || segment == 0 || header >= frame_len {
        return frame_len as u64;
    }
    let payload = frame_len - header;
    let segments = payload.div_ceil(segment);
    (payload + segments * header) as u64
}

/// What crossed one direction of a wire, for the failure report.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) passed: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    pub(crate) partitioned: AtomicU64,
    pub(crate) duplicated: AtomicU64,
    pub(crate) reordered: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A frame waiting to be sent, with its virtio header.
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) at: Instant,
    pub(super) frame: Vec<u8>,
}

/// One direction of a wire: its conditions, and the frames in flight.
#[derive(Debug)]
pub(super) struct Direction {
    pub(super) conditions: Conditions,
    pub(super) partitioned: bool,
    draws: Draws,
    /// The next index of each flow.
    flows: HashMap<u64, u64>,
    /// When the rate lets the next frame leave.
    rate_free: Option<Instant>,
    /// When each frame waiting for the rate leaves, for the queue's limit.
    backlog: VecDeque<Instant>,
    /// When the last frame in order arrives: none arrives before it.
    last: Option<Instant>,
    /// The frames in flight, in the order they arrive.
    in_flight: VecDeque<Waiting>,
    pub(super) counters: std::sync::Arc<Counters>,
}

impl Direction {
    pub(super) fn new(draws: Draws, counters: std::sync::Arc<Counters>) -> Direction {
        Direction {
            conditions: Conditions::new(),
            partitioned: false,
            draws,
            flows: HashMap::new(),
            rate_free: None,
            backlog: VecDeque::new(),
            last: None,
            in_flight: VecDeque::new(),
            counters,
        }
    }

    /// Whether frames go straight through, unqueued: nothing conditions
    /// this direction and nothing is in flight.
    pub(super) fn straight(&self) -> bool {
        !self.partitioned && self.conditions.is_perfect() && self.in_flight.is_empty()
    }

    /// Takes in `frame` (virtio header first), read at `now`: drops it,
    /// or schedules it (and its duplicate) in `in_flight`, or, where it is
    /// sent at once (a reordered frame), pushes it to `now_out`.
    pub(super) fn admit(&mut self, frame: Vec<u8>, now: Instant, now_out: &mut Vec<Vec<u8>>) {
        if self.partitioned {
            Counters::add(&self.counters.partitioned);
            return;
        }
        let conditions = self.conditions;
        let kind = classify(frame.get(VNET_HDR..).unwrap_or_default());
        let draw = |direction: &mut Direction, salt| match kind {
            Kind::Control => None,
            Kind::Data(flow) => {
                let index = direction.flows.get(&flow).copied().unwrap_or(0);
                Some(direction.draws.unit(flow, index, salt))
            }
        };
        let lost = draw(self, Salt::Loss).is_some_and(|unit| unit < conditions.loss);
        let duplicated =
            draw(self, Salt::Duplicate).is_some_and(|unit| unit < conditions.duplicate);
        let reordered = draw(self, Salt::Reorder).is_some_and(|unit| unit < conditions.reorder);
        let jitter = draw(self, Salt::Jitter).unwrap_or(0.5);
        if let Kind::Data(flow) = kind {
            *self.flows.entry(flow).or_insert(0) += 1;
        }
        if lost {
            Counters::add(&self.counters.lost);
            return;
        }
        let copies = if duplicated {
            Counters::add(&self.counters.duplicated);
            2
        } else {
            1
        };
        let bytes = wire_bytes(&frame, frame.len().saturating_sub(VNET_HDR));
        let mut frame = Some(frame);
        for copy in 0..copies {
            let Some(departs) = self.depart(bytes, now) else {
                Counters::add(&self.counters.queue_full);
                continue;
            };
            let this = match (copy + 1 == copies, &frame) {
                (true, _) => frame.take().unwrap_or_default(),
                (false, Some(original)) => original.clone(),
                (false, None) => Vec::new(),
            };
            if reordered && copy == 0 {
                Counters::add(&self.counters.reordered);
                now_out.push(this);
                continue;
            }
            // Delay ± jitter, drawn uniformly, never below zero; and never
            // before the frame ahead of it.
            let spread = conditions.jitter.as_secs_f64() * (2.0 * jitter - 1.0);
            let delay = (conditions.delay.as_secs_f64() + spread).max(0.0);
            let mut at = departs + Duration::from_secs_f64(delay);
            if let Some(last) = self.last {
                at = at.max(last);
            }
            self.last = Some(at);
            self.in_flight.push_back(Waiting { at, frame: this });
        }
    }

    /// When a frame of `bytes` read at `now` leaves, at the rate; `None`
    /// where the queue before the rate is full.
    fn depart(&mut self, bytes: u64, now: Instant) -> Option<Instant> {
        let Some(rate) = self.conditions.rate else {
            return Some(now);
        };
        while self.backlog.front().is_some_and(|&leaves| leaves <= now) {
            self.backlog.pop_front();
        }
        if self
            .conditions
            .queue
            .is_some_and(|limit| self.backlog.len() >= limit)
        {
            return None;
        }
        let start = self.rate_free.map_or(now, |free| free.max(now));
        let departs = start + Duration::from_secs_f64(bytes as f64 * 8.0 / rate as f64);
        self.rate_free = Some(departs);
        self.backlog.push_back(departs);
        Some(departs)
    }

    /// When the next frame in flight is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.in_flight.front().map(|waiting| waiting.at)
    }

    /// The next frame due by `now`, if any.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.in_flight.front()?.at > now {
            return None;
        }
        self.in_flight.pop_front().map(|waiting| waiting.frame)
    }

    /// Counts `count` frames sent on.
    pub(super) fn passed(&self, count: usize) {
        self.counters
            .passed
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Takes new conditions, for the next frame on; a change of rate starts
    /// from the frames already queued.
    pub(super) fn set(&mut self, conditions: Conditions) {
        if conditions.rate.is_none() {
            self.rate_free = None;
            self.backlog.clear();
        }
        self.conditions = conditions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// An Ethernet frame with a virtio header, of an IPv4 UDP datagram
    /// from `source_port` to `destination_port`.
    fn udp(source_port: u16, destination_port: u16, payload: usize) -> Vec<u8> {
        let mut frame = vec![0u8; VNET_HDR];
        frame.extend([0; 12]);
        frame.extend(ETH_P_IP.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0];
        ip.extend([10, 0, 0, 1, 10, 0, 0, 2]);
        frame.extend(ip);
        frame.extend(source_port.to_be_bytes());
        frame.extend(destination_port.to_be_bytes());
        frame.extend([0; 4]);
        frame.extend(vec![0xab; payload]);
        frame
    }

    fn arp() -> Vec<u8> {
        let mut frame = vec![0u8; VNET_HDR + 12];
        frame.extend(ETH_P_ARP.to_be_bytes());
        frame.extend([0; 28]);
        frame
    }

    fn direction(seed: u64, conditions: Conditions) -> Direction {
        let mut direction = Direction::new(Draws::new(seed, 1, 0), Arc::default());
        direction.set(conditions);
        direction
    }

    /// Which of `count` datagrams of one flow a direction loses.
    fn lost(seed: u64, count: usize) -> Vec<usize> {
        let mut direction = direction(seed, Conditions::new().loss(0.1));
        let now = Instant::now();
        let mut out = Vec::new();
        (0..count)
            .filter(|_| {
                let before = direction.counters.lost.load(Ordering::Relaxed);
                direction.admit(udp(40000, 4000, 8), now, &mut out);
                direction.counters.lost.load(Ordering::Relaxed) > before
            })
            .collect()
    }

    #[test]
    fn control_frames_draw_nothing() {
        assert_eq!(classify(&arp()[VNET_HDR..]), Kind::Control);
        assert!(matches!(classify(&udp(1, 2, 0)[VNET_HDR..]), Kind::Data(_)));
        // Control frames between data frames change no decision.
        let mut plain = direction(7, Conditions::new().loss(0.5));
        let mut interleaved = direction(7, Conditions::new().loss(0.5));
        let now = Instant::now();
        let mut out = Vec::new();
        for _ in 0..200 {
            plain.admit(udp(40000, 4000, 8), now, &mut out);
            interleaved.admit(arp(), now, &mut out);
            interleaved.admit(udp(40000, 4000, 8), now, &mut out);
        }
        let lost = |d: &Direction| d.counters.lost.load(Ordering::Relaxed);
        assert_eq!(lost(&plain), lost(&interleaved));
        assert_eq!(interleaved.in_flight.len(), plain.in_flight.len() + 200);
    }

    #[test]
    fn the_same_seed_draws_the_same() {
        let first = lost(42, 10_000);
        assert_eq!(first, lost(42, 10_000));
        let other = lost(43, 10_000);
        assert_ne!(first, other);
        // About 10 %: within the binomial 99.9 % interval (±3.29 σ = ±99).
        assert!((901..=1099).contains(&first.len()), "{}", first.len());
        let common = first
            .iter()
            .filter(|i| other.binary_search(i).is_ok())
            .count();
        assert!(common < 200, "independent seeds: {common} in common");
    }

    #[test]
    fn a_clients_ephemeral_port_does_not_change_the_flow() {
        let flow = |source, destination| classify(&udp(source, destination, 0)[VNET_HDR..]);
        assert_eq!(flow(40000, 4000), flow(51234, 4000));
        assert_eq!(flow(4000, 40000), flow(4000, 51234));
        assert_ne!(flow(40000, 4000), flow(40000, 4001));
        assert_ne!(flow(40000, 50000), flow(40001, 50000));
    }

    #[test]
    fn jitter_keeps_order_and_reorder_sends_ahead() {
        let start = Instant::now();
        let conditions = Conditions::new()
            .delay(Duration::from_millis(10))
            .jitter(Duration::from_millis(9));
        let mut jittery = direction(1, conditions);
        let mut out = Vec::new();
        for i in 0..1000 {
            jittery.admit(
                udp(40000, 4000, 8),
                start + Duration::from_micros(i * 10),
                &mut out,
            );
        }
        assert!(out.is_empty());
        let times: Vec<Instant> = jittery.in_flight.iter().map(|w| w.at).collect();
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "in order");
        assert!(times[0] >= start + Duration::from_millis(1));
        let mut reordering = direction(1, conditions.reorder(0.25));
        for _ in 0..1000 {
            reordering.admit(udp(40000, 4000, 8), start, &mut out);
        }
        assert!((150..350).contains(&out.len()), "{}", out.len());
    }

    #[test]
    fn the_rate_spaces_frames_and_the_queue_drops_at_the_tail() {
        let start = Instant::now();
        // 1,000 bytes at 8 Mbit/s: 1 ms each.
        let mut limited = direction(1, Conditions::new().rate(8_000_000).queue(5));
        let mut out = Vec::new();
        for _ in 0..10 {
            let frame = udp(40000, 4000, 1000 - 42);
            limited.admit(frame, start, &mut out);
        }
        assert_eq!(limited.counters.queue_full.load(Ordering::Relaxed), 5);
        let times: Vec<Duration> = limited.in_flight.iter().map(|w| w.at - start).collect();
        assert_eq!(
            times,
            (1..=5).map(Duration::from_millis).collect::<Vec<_>>()
        );
    }

    #[test]
    fn super_frames_count_as_the_frames_they_stand_for() {
        let mut vnet = [0u8; VNET_HDR];
        vnet[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
        vnet[2..4].copy_from_slice(&66u16.to_ne_bytes());
        vnet[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        assert_eq!(wire_bytes(&vnet, 66 + 1448 * 3), (66 + 1448) * 3);
        assert_eq!(wire_bytes(&[0; VNET_HDR], 100), 100);
    }

    #[test]
    fn duplicates_arrive_twice_in_order() {
        let mut twice = direction(3, Conditions::new().duplicate(1.0));
        let mut out = Vec::new();
        let now = Instant::now();
        twice.admit(udp(40000, 4000, 8), now, &mut out);
        assert_eq!(twice.in_flight.len(), 2);
        assert_eq!(twice.pop_due(now), twice.pop_due(now));
    }
}
