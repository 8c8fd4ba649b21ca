//! Reading what a capture left: files, pcapng blocks, the report's line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption;
use pcap_file::pcapng::{Block, PcapNgReader};

/// Every file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The interfaces of a pcapng file, by name, with the packets of each.
pub fn read_capture(path: &Path) -> Vec<(String, Vec<Vec<u8>>)> {
    read_capture_cut_short(path, false)
}

/// The same, of a file whose last block may be cut short (its writer died)
/// when `cut_short` is true.
pub fn read_capture_cut_short(path: &Path, cut_short: bool) -> Vec<(String, Vec<Vec<u8>>)> {
    let file = std::fs::File::open(path).expect("open the capture");
    let mut reader = PcapNgReader::new(file).expect("a pcapng file");
    let mut interfaces: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    while let Some(block) = reader.next_block() {
        let block = match block {
            Ok(block) => block,
            Err(_) if cut_short => break,
            Err(error) => panic!("a block that is not well formed: {error}"),
        };
        match block {
            Block::InterfaceDescription(interface) => {
                let name = interface
                    .options
                    .iter()
                    .find_map(|option| match option {
                        InterfaceDescriptionOption::IfName(name) => Some(name.to_string()),
                        _ => None,
                    })
                    .expect("every interface is named");
                interfaces.push((name, Vec::new()));
            }
            Block::EnhancedPacket(packet) => {
                interfaces[packet.interface_id as usize]
                    .1
                    .push(packet.data.to_vec());
            }
            _ => {}
        }
    }
    interfaces
}

/// The packets of a pcapng file in the order it holds them: each one's
/// interface, by name, timestamp, and whether it has a comment.
pub fn packet_times(path: &Path) -> Vec<(String, Duration, bool)> {
    let file = std::fs::File::open(path).expect("open the capture");
    let mut reader = PcapNgReader::new(file).expect("a pcapng file");
    let mut interfaces = Vec::new();
    let mut packets = Vec::new();
    while let Some(block) = reader.next_block() {
        match block.expect("a well formed block") {
            Block::InterfaceDescription(interface) => {
                let name = interface.options.iter().find_map(|option| match option {
                    InterfaceDescriptionOption::IfName(name) => Some(name.to_string()),
                    _ => None,
                });
                interfaces.push(name.expect("every interface is named"));
            }
            Block::EnhancedPacket(packet) => {
                let interface = interfaces[packet.interface_id as usize].clone();
                let comment = packet
                    .options
                    .iter()
                    .any(|option| matches!(option, EnhancedPacketOption::Comment(_)));
                packets.push((interface, packet.timestamp, comment));
            }
            _ => {}
        }
    }
    packets
}

/// Whether the interface `name` of a capture has a packet holding `payload`.
pub fn interface_holds(interfaces: &[(String, Vec<Vec<u8>>)], name: &str, payload: &[u8]) -> bool {
    interfaces
        .iter()
        .any(|(interface, packets)| interface == name && holds(packets, payload))
}

/// Whether one of `packets` holds `payload`.
pub fn holds(packets: &[Vec<u8>], payload: &[u8]) -> bool {
    packets.iter().any(|packet| {
        packet
            .windows(payload.len())
            .any(|window| window == payload)
    })
}

/// The path the report gives for the capture.
pub fn reported_capture(output: &str) -> PathBuf {
    let line = output
        .lines()
        .find(|line| line.starts_with("netns-test: its packets ("))
        .unwrap_or_else(|| panic!("no capture in the report:\n{output}"));
    let (_, path) = line.rsplit_once("): ").expect("a path");
    PathBuf::from(path)
}

/// The packets a capture says it left out: the `isb_ifdrop` of its
/// interface statistics blocks, summed.
pub fn left_out(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("open the capture");
    let mut reader = PcapNgReader::new(file).expect("a pcapng file");
    let mut left_out = 0;
    while let Some(block) = reader.next_block() {
        if let Block::InterfaceStatistics(statistics) = block.expect("a well formed block") {
            for option in statistics.options {
                if let InterfaceStatisticsOption::IsbIfDrop(count) = option {
                    left_out += count;
                }
            }
        }
    }
    left_out
}
