//! The wire's figures beside a plain veth pair's, measured in the same run:
//! round trips, TCP throughput, delay, loss and rate.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use netns_test_runtime::{Conditions, NetNs, Wire};

/// Round trips per measure.
const TRIPS: usize = 2000;
/// How long a TCP stream is timed.
const STREAM: Duration = Duration::from_secs(2);

/// A pair of namespaces joined by a veth pair or a wire, `a0` (10.2.0.1)
/// and `b0` (10.2.0.2), up.
struct Pair {
    a: NetNs,
    b: NetNs,
    wire: Option<Wire>,
}

fn pair(wire: bool) -> Pair {
    let (a, b) = (
        NetNs::new().expect("a namespace"),
        NetNs::new().expect("a namespace"),
    );
    let wire = match wire {
        true => Some(a.add_wire("a0", &b, "b0").expect("a wire")),
        false => {
            a.add_veth("a0", &b, "b0").expect("a veth pair");
            None
        }
    };
    a.add_address("a0", "10.2.0.1/24".parse().expect("a prefix"))
        .expect("an address");
    b.add_address("b0", "10.2.0.2/24".parse().expect("a prefix"))
        .expect("an address");
    a.set_link_up("a0").expect("up");
    b.set_link_up("b0").expect("up");
    Pair { a, b, wire }
}

impl Pair {
    fn set(&self, conditions: Conditions) {
        if let Some(wire) = &self.wire {
            wire.set_conditions(conditions).expect("conditions");
        }
    }

    fn set_from_a(&self, conditions: Conditions) {
        if let Some(wire) = &self.wire {
            wire.set_conditions_from("a0", conditions)
                .expect("conditions");
        }
    }

    /// UDP round trips from `a` to an echo in `b`: each one's duration.
    fn round_trips(&self, count: usize) -> Vec<Duration> {
        let echo = self
            .b
            .run(|| UdpSocket::bind("10.2.0.2:7"))
            .expect("run")
            .expect("bind");
        let echoing = std::thread::spawn(move || {
            let mut buffer = [0u8; 64];
            for _ in 0..count {
                if let Ok((length, from)) = echo.recv_from(&mut buffer) {
                    let _ = echo.send_to(&buffer[..length], from);
                }
            }
        });
        let trips = self
            .a
            .run(|| {
                let client = UdpSocket::bind("10.2.0.1:0").expect("bind");
                client.connect("10.2.0.2:7").expect("connect");
                let mut buffer = [0u8; 64];
                (0..count)
                    .map(|_| {
                        let start = Instant::now();
                        client.send(b"ping").expect("send");
                        client.recv(&mut buffer).expect("the echo");
                        start.elapsed()
                    })
                    .collect()
            })
            .expect("run");
        echoing.join().expect("the echo");
        trips
    }

    /// TCP goodput from `a` to `b` over [`STREAM`], in bits per second.
    fn tcp(&self, port: u16) -> f64 {
        let listener = self
            .b
            .run(|| TcpListener::bind(("10.2.0.2", port)))
            .expect("run")
            .expect("bind");
        let receiving = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buffer = vec![0u8; 1 << 20];
            let mut total = 0u64;
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                total += read as u64;
            }
            total
        });
        let start = Instant::now();
        self.a
            .run(|| {
                let mut stream = TcpStream::connect(("10.2.0.2", port)).expect("connect");
                let chunk = vec![0u8; 1 << 20];
                while start.elapsed() < STREAM {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
            })
            .expect("run");
        let total = receiving.join().expect("the receiver");
        total as f64 * 8.0 / start.elapsed().as_secs_f64()
    }

    /// Of `count` numbered UDP datagrams from `a` to `b`, paced, how many
    /// were lost.
    fn lost(&self, count: u32) -> u32 {
        let receiver = self
            .b
            .run(|| UdpSocket::bind("10.2.0.2:9"))
            .expect("run")
            .expect("bind");
        receiver
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        self.a
            .run(|| {
                let sender = UdpSocket::bind("10.2.0.1:0").expect("bind");
                let mut received = 0;
                let mut buffer = [0u8; 64];
                for number in 0..count {
                    sender
                        .send_to(&number.to_be_bytes(), "10.2.0.2:9")
                        .expect("send");
                    if number % 50 == 49 {
                        receiver
                            .set_read_timeout(Some(Duration::from_millis(2)))
                            .expect("timeout");
                        while receiver.recv(&mut buffer).is_ok() {
                            received += 1;
                        }
                    }
                }
                receiver
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .expect("timeout");
                while receiver.recv(&mut buffer).is_ok() {
                    received += 1;
                }
                count - received
            })
            .expect("run")
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn percentile99(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() * 99 / 100]
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

/// Prints the wire's rows.
pub(crate) fn rows() {
    println!();
    println!("A wire against a plain veth pair, in the same run (medians; the relay and the");
    println!("endpoints share the 2 cores):");
    println!("| measure | veth pair | wire | wire vs veth (target) |");
    println!("| --- | --- | --- | --- |");
    let (veth, wire) = (pair(false), pair(true));
    let (mut veth_trips, mut wire_trips) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        veth_trips.extend(veth.round_trips(TRIPS / 2));
        wire_trips.extend(wire.round_trips(TRIPS / 2));
    }
    let (veth_rtt, wire_rtt) = (median(&mut veth_trips), median(&mut wire_trips));
    println!(
        "| UDP round trip, median ({TRIPS}) | {} | {} | +{} (<= +60 µs) |",
        micros(veth_rtt),
        micros(wire_rtt),
        micros(wire_rtt.saturating_sub(veth_rtt))
    );
    println!(
        "| UDP round trip, p99 | {} | {} | |",
        micros(percentile99(&mut veth_trips)),
        micros(percentile99(&mut wire_trips))
    );
    let mut veth_tcp = Vec::new();
    let mut wire_tcp = Vec::new();
    for port in 0..3 {
        veth_tcp.push(veth.tcp(9100 + port));
        wire_tcp.push(wire.tcp(9200 + port));
    }
    veth_tcp.sort_by(f64::total_cmp);
    wire_tcp.sort_by(f64::total_cmp);
    let (veth_tcp, wire_tcp) = (veth_tcp[1], wire_tcp[1]);
    println!(
        "| TCP goodput, median of 3 x {STREAM:?} | {:.1} Gbit/s | {:.1} Gbit/s | {:.2}x (>= 0.50x) |",
        veth_tcp / 1e9,
        wire_tcp / 1e9,
        wire_tcp / veth_tcp
    );

    println!();
    println!("The wire's conditions, as measured:");
    println!("| condition | measured | target |");
    println!("| --- | --- | --- |");
    let delay = Duration::from_millis(10);
    wire.set_from_a(Conditions::new().delay(delay));
    let mut delayed = wire.round_trips(500);
    let base = wire_rtt;
    let least = *delayed.iter().min().expect("trips");
    let one_way = median(&mut delayed).saturating_sub(base);
    println!(
        "| delay 10 ms one way: round trip less a perfect wire's, median / least round trip | {} / {} | >= 10 ms, median <= 11 ms; least >= 10 ms |",
        micros(one_way),
        micros(least)
    );
    for (loss, low, high) in [(0.01, 68, 132), (0.1, 901, 1099)] {
        wire.set(Conditions::new().loss(loss));
        let lost = wire.lost(10_000);
        println!(
            "| loss {}% of 10,000 datagrams | {lost} lost | {low} to {high} (binomial 99.9 %) |",
            loss * 100.0
        );
    }
    for (rate, port) in [
        (1_000_000u64, 9300),
        (10_000_000, 9301),
        (100_000_000, 9302),
    ] {
        wire.set(Conditions::new().rate(rate));
        let goodput = wire.tcp(port);
        println!(
            "| rate {} Mbit/s: TCP goodput | {:.2} Mbit/s ({:.0} %) | within 10 % |",
            rate / 1_000_000,
            goodput / 1e6,
            goodput * 100.0 / rate as f64
        );
    }
}
