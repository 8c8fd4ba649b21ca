//! The modes: how a body gets a namespace of its own, and which one this
//! process uses.
//!
//! Every mode prepares the body through [`crate::sandbox`] and reports
//! through [`crate::outcome`]; the modes differ only in where the body's
//! thread lives: in the test process ([`thread`]), in a long-lived helper
//! process ([`helper`]), or in a process of its own ([`process`]).

pub(crate) mod child;
pub(crate) mod early;
pub(crate) mod helper;
pub(crate) mod process;
pub(crate) mod reaper;
pub(crate) mod runner;
pub(crate) mod select;
pub(crate) mod thread;
pub(crate) mod wire;

use std::fmt;

/// How the body of a test is isolated: the mode [`crate::selected_mode`]
/// names, as `NETNS_TEST_MODE` takes it (its `Display` is that name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// On a thread of the test process that unshared its network namespace.
    Thread,
    /// On a thread of a long-lived helper process that holds a user
    /// namespace of its own.
    Helper,
    /// In a child process per test, inside a new user and network namespace.
    Process,
}

impl Mode {
    /// The mode's name, as `NETNS_TEST_MODE` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Thread => "thread",
            Mode::Helper => "helper",
            Mode::Process => "process",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `NETNS_TEST_MODE` asks for; [`select::requested`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    Auto,
    Forced(Mode),
    /// A test's own `#[netns_test(process)]`, whatever the variable says.
    ProcessAttribute,
}
