//! Commands that start inside a namespace ([`NetNs::command`]), and the
//! last lines of what they print, kept for a failure report.
//!
//! A command enters its namespace (and its network's names) between
//! `fork` and `exec`, so it can be spawned from any thread. Its standard
//! output and error go to pipes that a thread of the namespace's reads,
//! keeping the last lines; a command given other `Stdio` keeps them. It
//! ends when its test does, as everything in a test's namespaces does.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{pipe2, read};

use crate::error::Error;
use crate::names;
use crate::netns::NetNs;

/// The lines of each stream a report shows.
const LINES: usize = 20;
/// The bytes of a line a report shows.
const LINE_MAX: usize = 300;

/// The last lines a command printed, for a failure report.
#[derive(Debug)]
pub(crate) struct CommandOutput {
    /// The namespace's name, or `ns` for one made by `NetNs::new`.
    host: String,
    program: String,
    /// The read ends of its standard output and error.
    ends: [OwnedFd; 2],
    tails: Mutex<[Tail; 2]>,
}

/// The end of one stream.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<Vec<u8>>,
    /// The line being printed, not yet ended.
    partial: Vec<u8>,
    /// Lines no longer kept.
    dropped: u64,
    ended: bool,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte != b'\n' {
                if self.partial.len() < LINE_MAX {
                    self.partial.push(byte);
                }
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            self.lines.push_back(line);
            if self.lines.len() > LINES {
                self.lines.pop_front();
                self.dropped += 1;
            }
        }
    }
}

impl CommandOutput {
    /// Reads what is waiting in each stream, without waiting; returns
    /// whether both have ended.
    fn drain(&self) -> bool {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        let mut buffer = [0u8; 4096];
        for (end, tail) in self.ends.iter().zip(tails.iter_mut()) {
            while !tail.ended {
                match read(end, &mut buffer) {
                    Ok(0) => tail.ended = true,
                    Ok(length) => tail.push(&buffer[..length]),
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => break,
                    Err(_) => tail.ended = true,
                }
            }
        }
        tails.iter().all(|tail| tail.ended)
    }

    /// Reads until both streams end (the command and every copy of its
    /// pipes' write ends are gone).
    fn pump(&self) {
        while !self.drain() {
            let tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
            let open: Vec<bool> = tails.iter().map(|tail| !tail.ended).collect();
            drop(tails);
            let mut fds: Vec<PollFd<'_>> = (self.ends.iter().zip(open))
                .filter(|(_, open)| *open)
                .map(|(end, _)| PollFd::new(end.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Where it runs, what it is, and the last lines of its standard
    /// output and error (each with how many lines came before them),
    /// read up to now.
    pub(crate) fn seen(&self) -> Seen<'_> {
        self.drain();
        let tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        let streams = [0, 1].map(|stream| {
            let tail = &tails[stream];
            let mut lines: Vec<Vec<u8>> = tail.lines.iter().cloned().collect();
            if !tail.partial.is_empty() {
                lines.push(tail.partial.clone());
            }
            (tail.dropped, lines)
        });
        Seen {
            host: &self.host,
            program: &self.program,
            streams,
        }
    }
}

/// What a command printed, as [`CommandOutput::seen`] read it.
#[derive(Debug)]
pub(crate) struct Seen<'a> {
    pub(crate) host: &'a str,
    pub(crate) program: &'a str,
    /// Standard output, then error: how many lines came before, and the
    /// last lines, each cut at [`LINE_MAX`] bytes.
    pub(crate) streams: [(u64, Vec<Vec<u8>>); 2],
}

/// The device and inode of the file descriptor `fd` is open on, if it is.
/// Async-signal-safe.
fn file_of(fd: libc::c_int) -> Option<(u64, u64)> {
    // SAFETY: a zeroed `struct stat` is valid; fstat(2) fills it in.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat(2) writes one `struct stat`, which `stat` is.
    let done = unsafe { libc::fstat(fd, &raw mut stat) };
    (done == 0).then_some((stat.st_dev, stat.st_ino))
}

/// What is told of each command made: a layer above (the failure reports)
/// registers here.
static WATCHER: OnceLock<fn(&Arc<CommandOutput>)> = OnceLock::new();

/// Has `watcher` told of every command made from now on; the first
/// watcher registered stays.
pub(crate) fn watch_new_commands(watcher: fn(&Arc<CommandOutput>)) {
    let _ = WATCHER.set(watcher);
}

/// Commands.
impl NetNs {
    /// A [`Command`] for `program` that starts inside this namespace, from
    /// whichever thread spawns it; on a host of a
    /// [`Network`](crate::Network), one that resolves its names.
    ///
    /// Inside a `#[netns_test]`, the process ends when the test does, in
    /// every mode, with whatever it started. What it would print on the
    /// test's own standard output or error (the default for
    /// [`Command::spawn`] and [`Command::status`]) goes instead to pipes
    /// that a thread reads, and its last lines appear in a failure's
    /// report under the namespace's name; output taken otherwise
    /// ([`Command::output`], [`Stdio::piped`](std::process::Stdio::piped), a file) is the caller's.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let server = NetNs::named("server")?;
    /// // `/proc/net` shows the namespace of the process that reads it.
    /// let output = server.command("cat")?.arg("/proc/net/dev").output()?;
    /// let links = String::from_utf8(output.stdout)?;
    /// assert!(links.contains("lo:") && links.lines().count() == 3, "{links}");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Duplicate`] or [`Error::Pipe`] when the process is out of
    /// descriptors; [`Error::Names`] when the view of its network's names
    /// cannot be made; [`Error::SpawnThread`] for the thread that reads its
    /// output.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Result<Command, Error> {
        let program = program.as_ref();
        let mut command = Command::new(program);
        let net = self.try_clone().map_err(|source| Error::Duplicate {
            step: "NetNs::command, for the command to enter the namespace",
            source,
        })?;
        let mnt =
            match &self.names {
                Some(names) => Some(names.view_fd()?.try_clone_to_owned().map_err(|source| {
                    Error::Duplicate {
                        step: "NetNs::command, for the command to see its network's names",
                        source,
                    }
                })?),
                None => None,
            };
        let pipe = || {
            pipe2(OFlag::O_CLOEXEC).map_err(|source| Error::Pipe {
                step: "NetNs::command, for its output",
                source,
            })
        };
        let ((out, out_w), (err, err_w)) = (pipe()?, pipe()?);
        for end in [&out, &err] {
            nix::fcntl::fcntl(end, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(
                |source| Error::Pipe {
                    step: "NetNs::command, to read its output without waiting",
                    source,
                },
            )?;
        }
        // What would go to the test's own output goes to the pipes.
        let test_output = [1, 2].map(file_of);
        let output = Arc::new(CommandOutput {
            host: self.name().unwrap_or("ns").to_owned(),
            program: program.to_string_lossy().into_owned(),
            ends: [out, err],
            tails: Mutex::default(),
        });
        let reader = Arc::clone(&output);
        // A thread of this namespace's, so that it is no thread left in
        // the test's own when the test ends.
        drop(self.spawn(move || reader.pump())?);
        if let Some(watcher) = WATCHER.get() {
            watcher(&output);
        }
        let pipes = [out_w, err_w];
        let enter = move || {
            names::enter_in_child(net.as_fd(), mnt.as_ref().map(AsFd::as_fd))?;
            for ((fd, pipe), test_output) in [1, 2].into_iter().zip(&pipes).zip(test_output) {
                let here = file_of(fd);
                if here.is_some() && here == test_output {
                    // SAFETY: dup2(2) takes two descriptors; `pipe` is
                    // open, and `fd` is replaced.
                    if unsafe { libc::dup2(pipe.as_raw_fd(), fd) } < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        };
        // SAFETY: between fork and exec, `enter` makes system calls only
        // (setns, getcwd, chdir, fstat, dup2) and allocates nothing; it owns
        // the descriptors it names, so they are open in the child.
        unsafe { command.pre_exec(enter) };
        Ok(command)
    }
}
