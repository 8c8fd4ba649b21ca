//! What a network namespace looks like, gathered over netlink (rtnetlink
//! and sock_diag, never `ip` or `ss`) by the same introspection the tests
//! have ([`NetNs::routes`], [`NetNs::neighbours`], [`NetNs::sockets`]), and
//! written in a few lines, in the spirit of `ip -br addr`, `ip route`,
//! `ip neigh` and `ss -tuan`; and, where it is a NAT, its rules (as their
//! comments say what they do) and its tracked connections (`conntrack -L`).

use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;

use crate::error::Error;
use crate::netns::NetNs;
use crate::topology::{Link, Listed, OperState, Route, Socket, name_of};

/// Where sockets taken earlier than the rest of the state come from.
#[derive(Debug)]
pub(crate) enum Taken {
    /// A dump of the namespace's sockets.
    Dumped(Result<Listed<Socket>, Error>),
    /// The sockets this process held in the namespace: they stand in for
    /// the same sockets in the dump made now, and are added where they are
    /// gone from it.
    Held(Vec<Socket>),
}

/// Whether `a` and `b` are the same socket, perhaps in different states.
fn same_socket(a: &Socket, b: &Socket) -> bool {
    (a.protocol, a.local, a.remote) == (b.protocol, b.local, b.remote)
}

/// Writes the state of `ns`, under the heading `label`, indented for a
/// failure report, with its sockets as `taken` earlier where given. A part
/// that cannot be read says why, in its place.
pub(crate) fn write(out: &mut String, label: &str, ns: &NetNs, taken: Option<Taken>) {
    let _ = writeln!(out, "  {label}");
    let links = ns.links();
    let names: HashMap<u32, String> = match &links {
        Ok(links) => links
            .iter()
            .map(|l| (l.index, printable(&l.name)))
            .collect(),
        Err(_) => HashMap::new(),
    };
    let name = |index: u32| name_of(&names, index);
    section(
        out,
        "links",
        links.map(|links| links.iter().map(link).collect()),
    );
    let routes = ns.routes_named(&name).map(|routes| {
        let shown = routes
            .entries
            .iter()
            .filter(|route| !kernel_link_local(route));
        lines_of(shown, &routes)
    });
    section(out, "routes", routes);
    let neighbours = ns
        .neighbours_named(&name)
        .map(|neighbours| lines_of(neighbours.entries.iter(), &neighbours));
    section(out, "neighbours", neighbours);
    let sockets = match taken {
        Some(Taken::Dumped(dumped)) => dumped,
        Some(Taken::Held(held)) => ns.sockets_listed().map(|mut now| {
            for socket in held {
                match now
                    .entries
                    .iter_mut()
                    .find(|there| same_socket(there, &socket))
                {
                    Some(there) => *there = socket,
                    None => now.entries.push(socket),
                }
            }
            now
        }),
        None => ns.sockets_listed(),
    };
    let lines = sockets.map(|sockets| lines_of(sockets.entries.iter(), &sockets));
    section(out, "sockets", lines);
    if let Some(rules) = ns.nat_rules() {
        section(
            out,
            "nat",
            Ok(rules.iter().map(|rule| printable(rule)).collect()),
        );
        let tracked = ns.conntrack().map(|tracked| {
            let lines = tracked.iter().map(|connection| connection.to_string());
            lines.collect()
        });
        section(out, "conntrack", tracked);
    }
}

/// The IPv6 link-local route the kernel adds to every link, left out of a
/// report.
fn kernel_link_local(route: &Route) -> bool {
    let link_local =
        matches!(route.destination.address(), IpAddr::V6(v6) if v6.is_unicast_link_local());
    route.by_kernel && link_local
}

/// A line for each of `shown`, then one that names how many entries of
/// `listed` could not be decoded, and why the first could not.
fn lines_of<'a, T: std::fmt::Display + 'a>(
    shown: impl Iterator<Item = &'a T>,
    listed: &Listed<T>,
) -> Vec<String> {
    let not_decoded = listed.first_error.as_ref().map(|first| {
        format!(
            "({} could not be decoded: {})",
            listed.undecodable,
            printable(first)
        )
    });
    shown
        .map(|entry| printable(&entry.to_string()))
        .chain(not_decoded)
        .collect()
}

/// Writes one part: its name, then one line per item.
fn section(out: &mut String, name: &str, lines: Result<Vec<String>, Error>) {
    let lines = match lines {
        Ok(lines) if lines.is_empty() => vec!["none".to_owned()],
        Ok(lines) => lines,
        Err(error) => vec![format!("unreadable: {error}")],
    };
    for (i, line) in lines.iter().enumerate() {
        let heading = if i == 0 { name } else { "" };
        let _ = writeln!(out, "    {heading:<11}{line}");
    }
}

fn link(link: &Link) -> String {
    let state = match (link.up, link.state) {
        (false, _) => "DOWN",
        (true, OperState::Up) => "UP",
        (true, OperState::Down) => "NO-CARRIER",
        (true, OperState::LowerLayerDown) => "LOWER-DOWN",
        (true, OperState::Unknown) => "UNKNOWN",
        (true, OperState::Other) => "OTHER",
    };
    let mut line = format!("{:<10} {state:<10} mtu {}", printable(&link.name), link.mtu);
    for address in &link.addresses {
        let _ = write!(line, " {address}");
    }
    line
}

/// `text` with its control characters escaped (`\u{1b}`, `\n`), so that a
/// name cannot drive the terminal a report is read on.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}
