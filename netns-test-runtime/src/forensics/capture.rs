//! Packet capture: a packet socket in each namespace of a test sees every
//! packet on every interface there, `lo` included, and the capture, a
//! client of the process's packet thread (`packet::service`), writes each
//! test's packets to one pcapng file, with an interface block per namespace
//! and interface (`test/lo`, `ns2/v1`).
//!
//! Nothing here exists unless capture is asked for: no socket, no thread.
//! The packet thread reads at most [`BATCH`] packets from each socket per
//! wakeup, then the capture's messages. A test's capture is finished by
//! the thread that finishes the test: the packet thread hands it over, and
//! that thread reads what is waiting for at most 100 ms
//! (`pcapng::FINISH_DRAIN`). A test's file holds at most
//! `NETNS_TEST_CAPTURE_LIMIT` bytes of packets; those past it are counted,
//! and the count is written in an interface statistics block
//! (`isb_ifdrop`, with a comment).

use std::collections::HashMap;
use std::io::BufWriter;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use pcap_file::pcapng::PcapNgWriter;

pub(crate) use super::capture_files::warn_once;
use super::capture_files::{self, Dir, stem_of};
use super::pcapng::{SNAPLEN, Source, TestCapture, capture_error, pcap_error};
use crate::error::Error;
use crate::netns::NetNs;
use crate::packet::service::{self, BATCH, Client, Mailbox, Wait};

/// How long a finishing test waits for the packet thread to hand its
/// capture over (it does within one wakeup).
const HANDOVER: Duration = Duration::from_secs(5);

/// What the capture client is told.
enum Message {
    /// A test's capture starts.
    Open(u64, Box<TestCapture>),
    /// A test made another namespace.
    Watch(u64, Source),
    /// A test is over: hand its capture over to the thread finishing it.
    Finish(u64, SyncSender<Box<TestCapture>>),
}

/// The capture client's messages, once it is added to the packet thread.
static CAPTURES: OnceLock<Mailbox<Message>> = OnceLock::new();

/// Starts the packet thread and adds the capture to it, once per process,
/// and opens the capture directory, `dir` (warning once if the one asked for
/// cannot be used). Called on the thread that runs a test, outside the
/// test's namespace and before its body, so that no thread counts among a
/// test's, and a body that changes the working directory changes nothing.
pub(crate) fn start_service(dir: &Path) -> Result<(), Error> {
    static STARTING: Mutex<()> = Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if CAPTURES.get().is_some() {
        return Ok(());
    }
    // Errors wait for the test's capture: a directory that cannot be
    // used fails no test.
    let _ = capture_files::dir(dir);
    service::start()?;
    let _ = CAPTURES.set(service::add(Captures::new)?);
    Ok(())
}

fn send(message: Message) -> Result<(), Error> {
    let captures = CAPTURES.get().ok_or(Error::ThreadLost {
        step: "capturing packets",
    })?;
    captures.send(message)
}

/// One test's capture, into a partial file until it is kept.
pub(crate) struct Capture {
    id: u64,
    dir: &'static Dir,
    stem: String,
    partial: String,
    finished: Mutex<bool>,
}

/// The partial files of this process's captures that are being written:
/// never taken for the leftovers of a process that ended.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn set_live(partial: &str, live: bool) {
    let mut all = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    match live {
        true => all.push(partial.to_owned()),
        false => all.retain(|name| name != partial),
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("stem", &self.stem)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Starts capturing in the calling thread's namespace, labelled
    /// `test`, the packets of the test `name`. [`start_service`] must have
    /// run.
    pub(crate) fn start(name: &str, limit: u64, dir: &Path) -> Result<Capture, Error> {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let dir = capture_files::dir(dir)?;
        let stem = stem_of(name);
        let (output, partial) = dir.create_partial(&stem)?;
        let started = || {
            let output =
                PcapNgWriter::new(BufWriter::new(output)).map_err(|error| Error::Capture {
                    step: "write the capture file's header",
                    source: pcap_error(error),
                })?;
            let source = Source::here("test".to_owned())?;
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            let test = TestCapture::new(output, source, dir, partial.clone(), limit);
            send(Message::Open(id, Box::new(test)))?;
            Ok(id)
        };
        set_live(&partial, true);
        match started() {
            Ok(id) => Ok(Capture {
                id,
                dir,
                stem,
                partial,
                finished: Mutex::new(false),
            }),
            Err(error) => {
                set_live(&partial, false);
                dir.remove(&partial);
                Err(error)
            }
        }
    }

    /// Captures in `ns` too, labelled `label`.
    pub(crate) fn watch(&self, label: String, ns: &NetNs) -> Result<(), Error> {
        let source = ns.run(|| Source::here(label))??;
        send(Message::Watch(self.id, source))
    }

    /// Stops capturing and keeps the file or removes it, once; a kept file
    /// first gets what is still waiting, for at most 100 ms (`pcapng::FINISH_DRAIN`).
    /// Returns the kept file's path and a line that says what it holds.
    pub(crate) fn finish(&self, keep: bool) -> Result<Option<(PathBuf, String)>, Error> {
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        if std::mem::replace(&mut *finished, true) {
            return Ok(None);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        send(Message::Finish(self.id, reply))?;
        let test = answer.recv_timeout(HANDOVER).map_err(|_| Error::Capture {
            step: "take the test's capture over from the capture thread",
            source: std::io::ErrorKind::TimedOut.into(),
        })?;
        // From here on, the file is this thread's alone.
        set_live(&self.partial, false);
        let summary = test.finish(keep);
        let summary = match (summary, keep) {
            (Ok(summary), true) => summary,
            (result, _) => {
                self.dir.remove(&self.partial);
                return result.map(|_| None);
            }
        };
        let file = self
            .dir
            .keep(&self.partial, &format!("{}.pcapng", self.stem))?;
        Ok(Some((file, summary.describe())))
    }
}

/// In the test process, after the process that ran the test `name` ended
/// without finishing its capture: keeps what it wrote, if it holds a
/// packet, and says so.
pub(crate) fn salvage(name: &str, dir: &Path) -> Option<String> {
    let dir = capture_files::dir(dir).ok()?;
    let partial = {
        let live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        dir.partials_of(&stem_of(name))
            .into_iter()
            .find(|partial| !live.contains(partial))?
    };
    let note = match dir.packets_in(&partial) {
        Ok(0) => {
            dir.remove(&partial);
            "netns-test: no packets were captured before the process that ran it ended\n".into()
        }
        Ok(packets) => match dir.keep(&partial, &format!("{}.pcapng", stem_of(name))) {
            Ok(file) => format!(
                "netns-test: its packets, up to the end of the process that ran it ({packets} packets): {}\n",
                file.display()
            ),
            Err(error) => format!("netns-test: the capture it was writing: {error}\n"),
        },
        Err(error) => format!("netns-test: the capture it was writing: {error}\n"),
    };
    Some(note)
}

/// Ends a capture whose finishing thread stopped waiting for it.
fn abandon(mut test: TestCapture) {
    test.close();
    set_live(&test.partial, false);
    test.dir.remove(&test.partial);
}

/// The capture, as a client of the packet thread: every open test's
/// capture, by id.
struct Captures {
    tests: HashMap<u64, TestCapture>,
    messages: Receiver<Message>,
    buffer: Vec<u8>,
}

impl Captures {
    fn new(messages: Receiver<Message>) -> Captures {
        Captures {
            tests: HashMap::new(),
            messages,
            buffer: vec![0; SNAPLEN],
        }
    }
}

impl Client for Captures {
    fn interest<'a>(&'a self, wait: &mut Wait<'a>) {
        for (&id, test) in &self.tests {
            for source in &test.sources {
                wait.readable(source.socket.as_fd(), id);
            }
            if let Some(due) = test.due {
                wait.by(due);
            }
        }
    }

    fn serve(&mut self, ready: Result<&[u64], Errno>) {
        // The messages first: a namespace a test made is read from the
        // same round as the others, before the round's watermark passes
        // its first packets.
        while let Ok(message) = self.messages.try_recv() {
            match message {
                Message::Open(id, test) => {
                    self.tests.insert(id, *test);
                }
                Message::Watch(id, source) => match self.tests.get_mut(&id) {
                    Some(test) if test.failed.is_none() => test.sources.push(source),
                    _ => source.close(),
                },
                Message::Finish(id, reply) => {
                    let Some(test) = self.tests.remove(&id) else {
                        continue;
                    };
                    if let Err(mpsc::SendError(test)) = reply.send(Box::new(test)) {
                        abandon(*test);
                    }
                }
            }
        }
        let mut ready = match ready {
            Ok(ready) => ready.to_vec(),
            Err(errno) => {
                // Nothing can be waited for: stop every capture, each of
                // which reports why when it finishes.
                for test in self.tests.values_mut() {
                    test.fail(capture_error("wait for packets", errno));
                }
                return;
            }
        };
        // The tests with a readable socket, and those whose held packets
        // are due; at most a batch from each socket: a flood on one test's
        // sockets delays no other test's packets, and no test's finish, by
        // more than one round.
        let now = Instant::now();
        let due = self
            .tests
            .iter()
            .filter(|(_, test)| test.due.is_some_and(|due| due <= now));
        ready.extend(due.map(|(&id, _)| id));
        ready.sort_unstable();
        ready.dedup();
        for id in ready {
            if let Some(test) = self.tests.get_mut(&id) {
                test.drain_some(&mut self.buffer, BATCH);
            }
        }
    }
}
