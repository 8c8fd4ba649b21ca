//! A failure report's lines for the commands a test started on its hosts:
//! where each ran, and the last lines it printed.

use std::fmt::Write;

use super::state::printable;
use crate::command::CommandOutput;

/// Writes `command`, indented for a failure report.
pub(super) fn write(out: &mut String, command: &CommandOutput) {
    let seen = command.seen();
    let _ = writeln!(
        out,
        "  command {} on {}",
        printable(seen.program),
        printable(seen.host)
    );
    let mut any = false;
    for (stream, (before, lines)) in ["stdout", "stderr"].into_iter().zip(&seen.streams) {
        if *before > 0 {
            let _ = writeln!(out, "    {stream} | ({before} lines before these)");
        }
        for line in lines {
            let text = String::from_utf8_lossy(line);
            let _ = writeln!(
                out,
                "    {stream} | {}",
                printable(text.trim_end_matches('\r'))
            );
            any = true;
        }
    }
    if !any {
        let _ = writeln!(out, "    printed nothing");
    }
}
