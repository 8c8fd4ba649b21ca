//! Helper mode: rootless tests at close to thread mode's speed.
//!
//! A fork and exec per test costs several times the namespace itself, so in
//! helper mode the test binary keeps long-lived helper processes instead.
//! Each helper is the test binary run again (for the test that needed it)
//! inside a new user namespace, where it holds CAP_SYS_ADMIN. It then serves
//! requests: for each, it runs one body on a thread of its own that unshares
//! a fresh network namespace, with the same runner as thread mode, finding
//! the body by its path in the registry that `#[netns_test]` fills.
//!
//! A helper runs one test at a time, so it can send that test's stdout and
//! stderr to the test's own pipes; tests run in parallel on several helpers,
//! as many as libtest runs at once. Outcomes travel as in process mode: over
//! a record pipe, read by the same code. A helper that crashes, or is killed
//! at a timeout, fails only the test it was running, and the next test gets
//! a new helper.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recv,
    recvmsg, sendmsg, socketpair,
};
use nix::unistd::getpid;

use crate::error::{Error, Stopped};
use crate::mode::child::{self, BodyStreams, ChildRun, Ran, spawn_child, stdin_copy};
use crate::mode::reaper;
use crate::mode::runner::{BodyThread, Io, run_on_named_thread};
use crate::mode::wire::{HELPER_MARKER, HelperMarker, HelperRequest, outcome_frame, started_frame};
use crate::netns::NsKey;
use crate::outcome::Outcome;
use crate::plan::Plan;
use crate::sandbox::{Entry, Sandbox};
use crate::test::{TESTS, Test};

/// How long a helper that closed a record without an outcome is given to
/// exit: it is dying, and its pipes close just before it can be waited for.
const DYING_GRACE: Duration = Duration::from_secs(1);

/// A helper process and the parent's end of its request socket.
struct Helper {
    child: Child,
    socket: OwnedFd,
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Only helpers that failed are dropped; idle ones live in `IDLE`
        // until the test process exits, when their socket closes and they
        // exit on their own.
        child::stop(&mut self.child);
    }
}

/// Helpers waiting for a test.
static IDLE: Mutex<Vec<Helper>> = Mutex::new(Vec::new());

/// In the parent: runs `test` on a helper and returns its outcome.
pub(crate) fn run_parent(test: &'static Test, plan: &Plan) -> Outcome {
    // A helper may have died between tests; then the body never started,
    // and the test is tried once more on a new helper.
    for _ in 0..2 {
        match run_once(test, plan) {
            Ok(Some(outcome)) => return outcome,
            Ok(None) => {}
            Err(error) => return Outcome::Runtime(error),
        }
    }
    Outcome::Runtime(Error::HelpersLost)
}

/// Runs the test once; `None` when the helper was gone before the body started.
fn run_once(test: &'static Test, plan: &Plan) -> Result<Option<Outcome>, Error> {
    let index = test.index().ok_or_else(|| Error::TestNotRegistered {
        path: test.path.to_owned(),
    })?;
    let idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let mut helper = match idle {
        Some(helper) => helper,
        None => spawn(test.name())?,
    };
    let request = HelperRequest {
        harness_ns: NsKey::of_this_thread()?,
        index,
        path: test.path.to_owned(),
        plan: plan.clone(),
    };
    let (run, ends) = ChildRun::open(false)?;
    let stdin = stdin_copy()?;
    let [record_w, stdout_w, stderr_w] = &ends.body;
    let fds = [record_w, stdout_w, stderr_w, &stdin].map(AsRawFd::as_raw_fd);
    let sent = sendmsg::<()>(
        helper.socket.as_raw_fd(),
        &[IoSlice::new(request.encode().as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    );
    drop((ends, stdin));
    match sent {
        Ok(_) => {}
        Err(Errno::EPIPE | Errno::ECONNRESET) => return Ok(None),
        Err(errno) => {
            return Err(Error::Child {
                step: "send a test to the helper process",
                source: errno.into(),
            });
        }
    }
    let record = match run.wait(&mut helper.child, plan.timeout, Stopped::Helper)? {
        Ran::TimedOut(outcome) => return Ok(Some(outcome)),
        Ran::Finished { record, .. } => record,
    };
    let decoded = crate::mode::wire::Record::decode(&record);
    // A helper whose body timed out still runs it: it is not reused.
    let timed_out = matches!(
        &decoded,
        Ok(record) if matches!(record.outcome, Some(Outcome::Runtime(Error::TimedOut { .. })))
    );
    let complete = matches!(&decoded, Ok(record) if record.outcome.is_some());
    let grace = if complete {
        Duration::ZERO
    } else {
        DYING_GRACE
    };
    let exited = child::exited_within(&mut helper.child, grace)?;
    match (&decoded, exited) {
        (Ok(record), Some(_)) if !record.started => return Ok(None),
        (_, None) if complete && !timed_out => IDLE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(helper),
        _ => {}
    }
    Ok(Some(
        match child::outcome_of(
            &record,
            exited,
            String::new(),
            "the helper process running the test",
        ) {
            // The helper reported the timeout, and is stopped with its body.
            Outcome::Runtime(Error::TimedOut { after, .. }) => Outcome::Runtime(Error::TimedOut {
                after,
                stopped: Stopped::Helper,
            }),
            outcome => outcome,
        },
    ))
}

/// Starts a helper, on the spawner thread: a helper dies with the thread
/// that forked it (`PR_SET_PDEATHSIG`), and that thread lives as long as
/// this process, so helpers outlive the test that started them but never
/// the test binary.
fn spawn(name: &str) -> Result<Helper, Error> {
    type Request = (String, mpsc::SyncSender<Result<Helper, Error>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let lost = || Error::ThreadLost {
        step: "starting helper processes",
    };
    let spawner = match SPAWNER.get() {
        Some(spawner) => spawner,
        None => {
            let (requests, incoming) = mpsc::channel::<Request>();
            thread::Builder::new()
                .name("netns-test-helpers".into())
                .spawn(move || {
                    for (name, reply) in incoming {
                        let _ = reply.send(spawn_here(&name));
                    }
                })
                .map_err(|source| Error::SpawnThread {
                    step: "starting helper processes",
                    source,
                })?;
            // Another test may have started one meanwhile; then this one
            // ends at once, its channel dropped.
            SPAWNER.get_or_init(|| Mutex::new(requests))
        }
    };
    let (reply, spawned) = mpsc::sync_channel(1);
    spawner
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send((name.to_owned(), reply))
        .map_err(|_| lost())?;
    spawned.recv().map_err(|_| lost())?
}

/// Starts a helper from the calling thread.
fn spawn_here(name: &str) -> Result<Helper, Error> {
    let (socket, helper_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|errno| Error::Child {
        step: "create the socket to a helper process",
        source: errno.into(),
    })?;
    let marker = HelperMarker {
        parent: getpid().as_raw(),
        socket: helper_end.as_raw_fd(),
        name: name.to_owned(),
    };
    // A helper outlives its tests: each request brings the test's stdin.
    let child = spawn_child(
        name,
        (HELPER_MARKER, marker.encode()),
        &[&helper_end],
        Stdio::null(),
        None,
    )?;
    Ok(Helper { child, socket })
}

/// In a helper: serves requests on `socket` until the parent closes it,
/// then exits the process.
pub(crate) fn serve(socket: OwnedFd) -> ! {
    // Orphans of the processes a body starts come to the helper, which
    // kills them all after each body; without that, it cannot serve.
    if reaper::adopt_orphans().is_err() {
        std::process::exit(1);
    }
    let mut payload = Vec::new();
    loop {
        // A request is one datagram; its length, whatever the test's path,
        // comes first, with MSG_TRUNC.
        let mut probe = [0u8; 1];
        let peeked = recv(
            socket.as_raw_fd(),
            &mut probe,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        );
        match peeked {
            Ok(0) | Err(_) => std::process::exit(0),
            Ok(length) => payload.resize(length, 0),
        }
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [IoSliceMut::new(&mut payload)];
        let received = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let Ok(message) = received else {
            std::process::exit(0);
        };
        if message.bytes == 0 {
            std::process::exit(0);
        }
        let (bytes, truncated) = (message.bytes, message.flags.contains(MsgFlags::MSG_TRUNC));
        let mut fds = Vec::new();
        for control in message.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(received) = control {
                for fd in received {
                    // SAFETY: SCM_RIGHTS installed this descriptor in this
                    // process for this message; it is owned once, here.
                    fds.push(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
                }
            }
        }
        let request = std::str::from_utf8(&payload[..bytes])
            .ok()
            .filter(|_| !truncated)
            .and_then(HelperRequest::decode);
        // A request without its descriptors cannot be answered; the parent
        // sees the pipes it sent closed, and no record.
        if let Ok([record, stdout, stderr, stdin]) = <[OwnedFd; 4]>::try_from(fds) {
            let streams = BodyStreams {
                stdin,
                stdout,
                stderr,
            };
            serve_one(request, File::from(record), streams);
        }
    }
}

/// Runs one requested body, with thread mode's runner, and writes its record.
fn serve_one(request: Option<HelperRequest>, mut record: File, streams: BodyStreams) {
    if record.write_all(&started_frame()).is_err() {
        return;
    }
    let body = Arc::new(BodyThread::default());
    let outcome = match request {
        None => Outcome::Runtime(Error::Malformed {
            step: "the request a helper process received",
        }),
        Some(request) => match TESTS
            .get(request.index)
            .filter(|test| test.path == request.path)
        {
            None => Outcome::Runtime(Error::TestNotRegistered { path: request.path }),
            Some(test) => {
                let sandbox = Sandbox {
                    entry: Entry::Unshare,
                    harness_ns: request.harness_ns,
                };
                // The helper keeps the timeout, to report it with the test's
                // network; the parent stops the helper then, or after a
                // grace if the helper cannot.
                let io = Io::Redirected(streams);
                run_on_named_thread(test, sandbox, io, request.plan, Some(&body)).into_outcome()
            }
        },
    };
    // Before the outcome: the test process reads the body's output until
    // every process holding the pipes has ended.
    reaper::kill_descendants();
    let _ = record.write_all(&outcome_frame(&outcome));
    // A body that timed out runs on: the parent stops this helper.
    if matches!(outcome, Outcome::Runtime(Error::TimedOut { .. })) {
        return;
    }
    // A body that left threads in its namespace (a process-wide pool made
    // lazily) would have the next test on this helper use them there: the
    // helper retires instead, and the next test gets a new one.
    if !body.threads_left().is_empty() {
        drop(record);
        std::process::exit(0);
    }
}
