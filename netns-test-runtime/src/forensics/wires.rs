//! A failure report's lines for the wires a test made: each direction's
//! conditions, whether it is cut, and what crossed it.

use std::fmt::Write;

use crate::topology::WireShared;

/// Writes `wire`, indented for a failure report.
pub(super) fn write(out: &mut String, wire: &WireShared) {
    let control = wire.control();
    let _ = writeln!(out, "  wire {} (seed {})", wire.name(), wire.seed);
    for from in 0..2 {
        let cut = match control.partitioned[from] {
            true => ", partitioned",
            false => "",
        };
        let _ = writeln!(
            out,
            "    from {:<6} {}{cut}: {}",
            wire.ends[from],
            control.conditions[from],
            wire.counters(from),
        );
    }
}
