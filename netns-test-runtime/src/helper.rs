//! Helper mode: rootless tests at close to thread mode's speed.
//!
//! A fork and exec per test costs several times the namespace itself, so in
//! helper mode the test binary keeps long-lived helper processes instead.
//! Each helper is the test binary run again (for the test that needed it)
//! inside a new user namespace, where it holds CAP_SYS_ADMIN. It then serves
//! requests: for each, it runs one test body on a thread of its own that
//! unshares a fresh network namespace, exactly as thread mode does, finding
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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Child;
use std::sync::{Mutex, OnceLock, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::unistd::{getpid, getppid};

use crate::__private::{TESTS, Test};
use crate::error::Error;
use crate::netns::{NsKey, ensure_isolated, handle_if, private_sysfs, unshare_fresh};
use crate::outcome::{Outcome, Record, started_frame};
use crate::process::{Pumped, Streams, outcome_of, pipe, redirected, spawn_child};

/// The environment variable that makes a child a helper: `parent:socket:name`.
const HELPER: &str = "__NETNS_TEST_HELPER";

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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Helpers waiting for a test.
static IDLE: Mutex<Vec<Helper>> = Mutex::new(Vec::new());

fn request_error(source: nix::errno::Errno) -> Error {
    Error::Child {
        step: "send a test to the helper process",
        source: source.into(),
    }
}

/// In the parent: runs `test` on a helper and returns its outcome.
pub(crate) fn run_parent(test: &Test, name: &str, timeout: Option<Duration>) -> Outcome {
    // A helper may have died between tests; then the body never started,
    // and the test is tried once more on a new helper.
    let mut outcome = Outcome::Passed;
    for _ in 0..2 {
        match run_once(test, name, timeout) {
            Ok(Some(done)) => return done,
            Ok(None) => {
                outcome = Outcome::Harness(Error::Child {
                    step: "run the test in a helper process",
                    source: std::io::Error::other(
                        "two helpers in a row ended before the test started",
                    ),
                })
            }
            Err(error) => return Outcome::Harness(error),
        }
    }
    outcome
}

/// Runs the test once; `None` when the helper was gone before the body started.
fn run_once(test: &Test, name: &str, timeout: Option<Duration>) -> Result<Option<Outcome>, Error> {
    let idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
    let mut helper = match idle {
        Some(helper) => helper,
        None => spawn(name)?,
    };
    let harness = NsKey::of_this_thread()?;
    let (record_r, record_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let payload = format!("{}:{}", harness.encode(), test.path);
    let fds = [
        record_w.as_raw_fd(),
        stdout_w.as_raw_fd(),
        stderr_w.as_raw_fd(),
    ];
    let sent = sendmsg::<()>(
        helper.socket.as_raw_fd(),
        &[IoSlice::new(payload.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    );
    drop((record_w, stdout_w, stderr_w));
    match sent {
        Ok(_) => {}
        Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => return Ok(None),
        Err(errno) => return Err(request_error(errno)),
    }
    let streams = Streams {
        record: record_r,
        stdout: stdout_r,
        stderr: stderr_r,
        harness: None,
    };
    let record = match streams.pump(&mut helper.child, timeout)? {
        Pumped::TimedOut => {
            return Ok(Some(Outcome::Harness(Error::TimedOut {
                after: timeout.unwrap_or_default(),
                left_running: false,
            })));
        }
        Pumped::Finished { record, .. } => record,
    };
    let decoded = Record::decode(&record);
    let complete = matches!(
        decoded,
        Ok(Record {
            outcome: Some(_),
            ..
        })
    );
    // A helper that closed the record without an outcome is dying or broken:
    // its pipes close just before it can be waited for, so wait a little.
    let mut exited = None;
    for _ in 0..if complete { 1 } else { 200 } {
        exited = helper.child.try_wait().map_err(|source| Error::Child {
            step: "wait for the helper process",
            source,
        })?;
        if exited.is_some() || complete {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    match (&decoded, exited) {
        (Ok(Record { started: false, .. }), Some(_)) => return Ok(None),
        (
            Ok(Record {
                outcome: Some(_), ..
            }),
            None,
        ) => {
            IDLE.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(helper);
        }
        _ => {}
    }
    Ok(Some(outcome_of(
        &record,
        exited,
        String::new(),
        "the helper process running the test",
    )))
}

/// Starts a helper, on the spawner thread: a helper dies with the thread
/// that forked it (`PR_SET_PDEATHSIG`), and that thread lives as long as
/// this process, so helpers outlive the test that started them but never
/// the test binary.
fn spawn(name: &str) -> Result<Helper, Error> {
    type Request = (String, mpsc::SyncSender<Result<Helper, Error>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let unavailable = |_| Error::SpawnThread {
        purpose: "starting helper processes",
        source: std::io::Error::other("the spawner thread is gone"),
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
                    purpose: "starting helper processes",
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
        .map_err(|_| unavailable(()))?;
    spawned.recv().map_err(|_| unavailable(()))?
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
    let marker = format!("{}:{}:{name}", getpid().as_raw(), helper_end.as_raw_fd());
    let child = spawn_child(name, (HELPER, marker), &[&helper_end], None)?;
    Ok(Helper { child, socket })
}

/// In a helper: the request socket, when this process is the helper that
/// was started for the test `name`.
pub(crate) fn helper_socket(name: &str) -> Option<RawFd> {
    let marker = std::env::var(HELPER).ok()?;
    let mut fields = marker.splitn(3, ':');
    let parent: i32 = fields.next()?.parse().ok()?;
    let socket: RawFd = fields.next()?.parse().ok()?;
    (fields.next()? == name && parent == getppid().as_raw()).then_some(socket)
}

/// In a helper: serves requests until the parent closes the socket, then
/// exits the process.
pub(crate) fn serve(socket: RawFd) -> ! {
    // SAFETY: the parent opened this socket for this helper and cleared its
    // close-on-exec flag; nothing else in this process owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(socket) };
    loop {
        let mut payload = [0u8; 4096];
        let mut space = nix::cmsg_space!([RawFd; 3]);
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
        let mut fds = Vec::new();
        for control in message.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(received) = control {
                for fd in received {
                    // SAFETY: SCM_RIGHTS installed this descriptor in this
                    // process for this message; it is owned once, here.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        let bytes = message.bytes;
        let text = String::from_utf8_lossy(&payload[..bytes]).into_owned();
        // A request without its three pipes cannot be answered; the parent
        // sees the descriptors it sent closed, and no record.
        if let Ok([record, stdout, stderr]) = <[OwnedFd; 3]>::try_from(fds) {
            serve_one(&text, File::from(record), stdout, stderr);
        }
    }
}

/// Runs one requested test body, as thread mode does, and writes its record.
fn serve_one(request: &str, mut record: File, stdout: OwnedFd, stderr: OwnedFd) {
    if record.write_all(&started_frame()).is_err() {
        return;
    }
    let (harness, path) = request.split_once(':').unwrap_or_default();
    let harness = NsKey::decode(harness);
    let test = TESTS.iter().find(|test| test.path == path);
    let outcome = match (harness, test) {
        (Some(harness), Some(test)) => run_on_thread(test, harness, &stdout, &stderr),
        _ => Outcome::Harness(Error::InChild {
            message: format!("the helper has no test registered as `{path}`"),
        }),
    };
    drop((stdout, stderr));
    let _ = record.write_all(&outcome.to_frame());
}

fn run_on_thread(
    test: &'static Test,
    harness: NsKey,
    stdout: &OwnedFd,
    stderr: &OwnedFd,
) -> Outcome {
    let name = crate::run::test_name(test.path);
    thread::scope(|scope| {
        let spawned = thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, || {
                let prepared = unshare_fresh()
                    .and_then(|()| if test.sysfs { private_sysfs() } else { Ok(()) })
                    .and_then(|()| ensure_isolated(harness))
                    .and_then(|()| handle_if(test.handle));
                match prepared {
                    Ok(ns) => redirected(stdout, stderr, || Outcome::of_body(test.body, ns)),
                    Err(error) => Outcome::Harness(error),
                }
            });
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(Outcome::Panicked),
            Err(source) => Outcome::Harness(Error::SpawnThread {
                purpose: "the test's body",
                source,
            }),
        }
    })
}
