//! Every encoding that crosses a process boundary: the markers that tell a
//! child or a helper what it is, the helper's requests, the namespace keys
//! they carry, and the outcome record a child writes.
//!
//! Markers and requests are text fields joined by `:`; the last field is a
//! test's name or path, which may hold `:` itself. The record is binary
//! frames. Each encoding has a round-trip test below.

use std::ffi::OsStr;
use std::fmt::Display;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::env;
use crate::error::{Error, Stopped};
use crate::netns::{NsId, NsKey};
use crate::outcome::{Outcome, panic_message};
use crate::plan::Plan;
use crate::test::{Test, TestError};

/// The environment variable that makes a child a process-mode child.
pub(crate) const CHILD_MARKER: &str = "__NETNS_TEST_CHILD";

/// The environment variable that makes a child a helper.
pub(crate) const HELPER_MARKER: &str = "__NETNS_TEST_HELPER";

/// Joins fields with `:`.
fn join(fields: &[&dyn Display]) -> String {
    fields
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(":")
}

/// Splits `text` into `N` fields; the last keeps any `:` it holds.
fn split<const N: usize>(text: &str) -> Option<[&str; N]> {
    let fields: Vec<&str> = text.splitn(N, ':').collect();
    fields.try_into().ok()
}

impl NsKey {
    /// `c<cookie>` or `i<dev>.<ino>`.
    pub(crate) fn encode(&self) -> String {
        match self {
            NsKey::Cookie(cookie) => format!("c{cookie}"),
            NsKey::Inode(id) => format!("i{}.{}", id.dev, id.ino),
        }
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        if let Some(cookie) = text.strip_prefix('c') {
            return cookie.parse().ok().map(NsKey::Cookie);
        }
        let (dev, ino) = text.strip_prefix('i')?.split_once('.')?;
        Some(NsKey::Inode(NsId {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
        }))
    }
}

/// What a parent tells the child that runs one test in process mode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ChildMarker {
    /// The parent's pid, so that a process the body starts does not take
    /// the marker as its own.
    pub(crate) parent: i32,
    /// The test's index in the registry.
    pub(crate) index: usize,
    /// The write ends of the record, stdout and stderr pipes.
    pub(crate) fds: [RawFd; 3],
    /// The parent's harness namespace, which the body must not be in.
    pub(crate) harness_ns: NsKey,
    /// The test's libtest name.
    pub(crate) name: String,
    /// What the test process decided for the test.
    pub(crate) plan: Plan,
}

/// The plan's fields: its timeout in milliseconds (`-` for none), its
/// capture setting, its capture limit, its seed, and its capture
/// directory's bytes in hex (a path may hold `:`, and need not be UTF-8).
fn plan_fields(plan: &Plan) -> [String; 5] {
    let timeout = plan
        .timeout
        .map_or_else(|| "-".to_owned(), |timeout| timeout.as_millis().to_string());
    let capture = match plan.capture {
        env::Capture::Off => "off",
        env::Capture::Failed => "failed",
        env::Capture::All => "all",
    };
    let dir = plan.capture_dir.as_os_str().as_bytes();
    let dir = dir.iter().map(|byte| format!("{byte:02x}")).collect();
    [
        timeout,
        capture.to_owned(),
        plan.capture_limit.to_string(),
        plan.seed.to_string(),
        dir,
    ]
}

/// The plan of `plan_fields`; its directory must be absolute.
fn plan_of([timeout, capture, limit, seed, dir]: [&str; 5]) -> Option<Plan> {
    let dir: Vec<u8> = (0..dir.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(dir.get(at..at + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let dir = Path::new(OsStr::from_bytes(&dir));
    Some(Plan {
        timeout: match timeout {
            "-" => None,
            millis => Some(Duration::from_millis(millis.parse().ok()?)),
        },
        capture: match capture {
            "off" => env::Capture::Off,
            "failed" => env::Capture::Failed,
            "all" => env::Capture::All,
            _ => return None,
        },
        capture_limit: limit.parse().ok()?,
        seed: seed.parse().ok()?,
        capture_dir: dir.is_absolute().then(|| dir.into())?,
    })
}

impl ChildMarker {
    /// Whether this marker was set for `test`.
    pub(crate) fn is_for(&self, test: &'static Test) -> bool {
        self.name == test.name() && test.index() == Some(self.index)
    }

    pub(crate) fn encode(&self) -> String {
        let [record, stdout, stderr] = self.fds;
        let key = self.harness_ns.encode();
        let [timeout, capture, limit, seed, dir] = plan_fields(&self.plan);
        join(&[
            &self.parent,
            &self.index,
            &record,
            &stdout,
            &stderr,
            &key,
            &timeout,
            &capture,
            &limit,
            &seed,
            &dir,
            &self.name,
        ])
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let [
            parent,
            index,
            record,
            stdout,
            stderr,
            key,
            timeout,
            capture,
            limit,
            seed,
            dir,
            name,
        ] = split(text)?;
        Some(ChildMarker {
            plan: plan_of([timeout, capture, limit, seed, dir])?,
            parent: parent.parse().ok()?,
            index: index.parse().ok()?,
            fds: [
                record.parse().ok()?,
                stdout.parse().ok()?,
                stderr.parse().ok()?,
            ],
            harness_ns: NsKey::decode(key)?,
            name: name.to_owned(),
        })
    }
}

/// What a parent tells a helper it starts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HelperMarker {
    /// The parent's pid.
    pub(crate) parent: i32,
    /// The helper's end of the request socket.
    pub(crate) socket: RawFd,
    /// The libtest name of the test the helper was started for: the
    /// helper's libtest runs just that test, which serves requests.
    pub(crate) name: String,
}

impl HelperMarker {
    pub(crate) fn encode(&self) -> String {
        join(&[&self.parent, &self.socket, &self.name])
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let [parent, socket, name] = split(text)?;
        Some(HelperMarker {
            parent: parent.parse().ok()?,
            socket: socket.parse().ok()?,
            name: name.to_owned(),
        })
    }
}

/// A test a helper is asked to run; the pipes come beside it as SCM_RIGHTS.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HelperRequest {
    /// The parent's harness namespace, which the body must not be in.
    pub(crate) harness_ns: NsKey,
    /// The test's index in the registry, which is its key.
    pub(crate) index: usize,
    /// The test's path, to check that the index names the same test.
    pub(crate) path: String,
    /// What the test process decided for the test.
    pub(crate) plan: Plan,
}

impl HelperRequest {
    pub(crate) fn encode(&self) -> String {
        let [timeout, capture, limit, seed, dir] = plan_fields(&self.plan);
        let key = self.harness_ns.encode();
        join(&[
            &key,
            &self.index,
            &timeout,
            &capture,
            &limit,
            &seed,
            &dir,
            &self.path,
        ])
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let [key, index, timeout, capture, limit, seed, dir, path] = split(text)?;
        Some(HelperRequest {
            plan: plan_of([timeout, capture, limit, seed, dir])?,
            harness_ns: NsKey::decode(key)?,
            index: index.parse().ok()?,
            path: path.to_owned(),
        })
    }
}

/// A frame of the record: a tag byte, a little-endian `u32` length, the text.
mod tag {
    pub(super) const STARTED: u8 = 1;
    pub(super) const PASSED: u8 = 2;
    pub(super) const RETURNED: u8 = 3;
    pub(super) const PANICKED: u8 = 4;
    pub(super) const PANICKED_OPAQUE: u8 = 5;
    pub(super) const RUNTIME: u8 = 6;
    pub(super) const TIMED_OUT: u8 = 7;
}

/// Encodes a frame.
fn frame(tag: u8, text: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + text.len());
    frame.push(tag);
    frame.extend_from_slice(&(text.len() as u32).to_le_bytes());
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// The frame a child writes just before it prepares and runs the body.
pub(crate) fn started_frame() -> Vec<u8> {
    frame(tag::STARTED, "")
}

/// The frame a child writes once the body has ended.
pub(crate) fn outcome_frame(outcome: &Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Passed => frame(tag::PASSED, ""),
        Outcome::Returned(error) => frame(tag::RETURNED, error.as_debug()),
        Outcome::Panicked(payload) => match panic_message(payload.as_ref()) {
            Some(message) => frame(tag::PANICKED, message),
            None => frame(tag::PANICKED_OPAQUE, ""),
        },
        Outcome::Runtime(Error::TimedOut { after, .. }) => {
            frame(tag::TIMED_OUT, &after.as_millis().to_string())
        }
        Outcome::Runtime(error) => frame(tag::RUNTIME, &error.to_string()),
    }
}

/// What a child's record says.
#[derive(Debug)]
pub(crate) struct Record {
    /// The child started the body.
    pub(crate) started: bool,
    /// The body ended, and this is how.
    pub(crate) outcome: Option<Outcome>,
}

impl Record {
    /// Decodes a record. A frame cut short is an error, never a guess.
    pub(crate) fn decode(mut bytes: &[u8]) -> Result<Record, &'static str> {
        let mut record = Record {
            started: false,
            outcome: None,
        };
        while let Some((&tag, rest)) = bytes.split_first() {
            let length = rest
                .get(..4)
                .ok_or("a frame's length is cut short")?
                .try_into()
                .map(u32::from_le_bytes)
                .map_err(|_| "a frame's length is cut short")? as usize;
            let text = rest
                .get(4..4 + length)
                .ok_or("a frame's text is cut short")?;
            let text = String::from_utf8_lossy(text).into_owned();
            bytes = &rest[4 + length..];
            if record.outcome.is_some() {
                return Err("a frame follows the outcome");
            }
            match tag {
                tag::STARTED => record.started = true,
                tag::PASSED => record.outcome = Some(Outcome::Passed),
                tag::RETURNED => {
                    record.outcome = Some(Outcome::Returned(TestError::from_debug(text)));
                }
                tag::PANICKED => record.outcome = Some(Outcome::Panicked(Box::new(text))),
                tag::PANICKED_OPAQUE => record.outcome = Some(Outcome::Panicked(Box::new(()))),
                tag::RUNTIME => {
                    record.outcome = Some(Outcome::Runtime(Error::InChild { message: text }));
                }
                tag::TIMED_OUT => {
                    let millis = text.parse().map_err(|_| "a timeout is not a number")?;
                    // The parent stops the child once it has reported.
                    record.outcome = Some(Outcome::Runtime(Error::TimedOut {
                        after: Duration::from_millis(millis),
                        stopped: Stopped::Process,
                    }));
                }
                _ => return Err("a frame has an unknown tag"),
            }
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [NsKey; 2] = [
        NsKey::Cookie(12345),
        NsKey::Inode(NsId {
            dev: 4,
            ino: 4026531840,
        }),
    ];

    #[test]
    fn keys_survive_the_trip() {
        for key in KEYS {
            assert_eq!(NsKey::decode(&key.encode()), Some(key));
        }
        for bad in ["", "c", "x1", "i4", "i4.x", "c-1"] {
            assert_eq!(NsKey::decode(bad), None, "{bad:?}");
        }
    }

    /// Plans of every kind: with and without a timeout, each capture, a
    /// capture directory with `:` in it and one that is not UTF-8.
    fn plans() -> [Plan; 3] {
        let dir = |bytes: &[u8]| Path::new(OsStr::from_bytes(bytes)).into();
        [
            Plan {
                timeout: None,
                capture: env::Capture::Off,
                capture_limit: 64 << 20,
                seed: 0,
                capture_dir: dir(b"/src/target/debug/netns-test-captures"),
            },
            Plan {
                timeout: Some(Duration::from_millis(1500)),
                capture: env::Capture::Failed,
                capture_limit: 1,
                seed: 7,
                capture_dir: dir(b"/tmp/a:b/c d"),
            },
            Plan {
                timeout: Some(Duration::from_secs(60)),
                capture: env::Capture::All,
                capture_limit: u64::MAX,
                seed: u64::MAX,
                capture_dir: dir(b"/\xff\xe9/captures"),
            },
        ]
    }

    #[test]
    fn the_child_marker_survives_the_trip() {
        for (i, plan) in plans().into_iter().enumerate() {
            let harness_ns = KEYS[i % KEYS.len()];
            let marker = ChildMarker {
                parent: 4242,
                index: 17,
                fds: [5, 6, 7],
                harness_ns,
                name: "outer::inner::a_test".into(),
                plan,
            };
            assert_eq!(ChildMarker::decode(&marker.encode()), Some(marker));
        }
        assert_eq!(ChildMarker::decode("1:2:3"), None);
        assert_eq!(ChildMarker::decode("x:0:5:6:7:c4:-:off:1:0:2f:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:4.9:-:off:1:0:2f:name"), None);
        assert_eq!(ChildMarker::decode("1:-1:5:6:7:c4:-:off:1:0:2f:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:x:off:1:0:2f:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:-:on:1:0:2f:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:-:off:-1:0:2f:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:-:off:1:x:2f:name"), None);
        // A directory that is not whole hex, or not absolute.
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:-:off:1:0:2:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:-:off:1:0:2g:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:-:off:1:0:61:name"), None);
        assert_eq!(ChildMarker::decode("1:0:5:6:7:c4:-:off:1:0::name"), None);
        assert_eq!(
            ChildMarker::decode("1:0:5:6:7:c4:-:off:9:3:2f78:"),
            Some(ChildMarker {
                parent: 1,
                index: 0,
                fds: [5, 6, 7],
                harness_ns: NsKey::Cookie(4),
                name: String::new(),
                plan: Plan {
                    timeout: None,
                    capture: env::Capture::Off,
                    capture_limit: 9,
                    seed: 3,
                    capture_dir: Path::new("/x").into(),
                },
            })
        );
    }

    #[test]
    fn the_helper_marker_survives_the_trip() {
        let marker = HelperMarker {
            parent: 77,
            socket: 9,
            name: "a::b::with:colons".into(),
        };
        assert_eq!(HelperMarker::decode(&marker.encode()), Some(marker));
        assert_eq!(HelperMarker::decode("77:9"), None);
        assert_eq!(HelperMarker::decode("77:x:name"), None);
        assert_eq!(HelperMarker::decode("-:9:name"), None);
    }

    #[test]
    fn the_helper_request_survives_the_trip() {
        for (i, plan) in plans().into_iter().enumerate() {
            let harness_ns = KEYS[i % KEYS.len()];
            let request = HelperRequest {
                harness_ns,
                index: 3,
                path: "my_crate::a::b".into(),
                plan,
            };
            assert_eq!(HelperRequest::decode(&request.encode()), Some(request));
        }
        assert_eq!(HelperRequest::decode("c1:3"), None);
        assert_eq!(HelperRequest::decode("q1:3:-:off:1:0:2f:path"), None);
        assert_eq!(HelperRequest::decode("c1:x:-:off:1:0:2f:path"), None);
        assert_eq!(HelperRequest::decode("c1:3:-:everything:1:0:2f:path"), None);
        assert_eq!(HelperRequest::decode("c1:3:-:off:1:0:2f2:path"), None);
        assert_eq!(HelperRequest::decode("c1:3:-:off:1:0:path"), None);
    }

    fn round_trip(outcome: Outcome) -> Record {
        let mut bytes = started_frame();
        bytes.extend(outcome_frame(&outcome));
        Record::decode(&bytes).expect("a whole record")
    }

    #[test]
    fn every_outcome_survives_the_trip() {
        let record = round_trip(Outcome::Passed);
        assert!(record.started);
        assert!(matches!(record.outcome, Some(Outcome::Passed)));

        let error = TestError::from_debug("Custom { kind: Other }".into());
        let record = round_trip(Outcome::Returned(error));
        assert!(
            matches!(record.outcome, Some(Outcome::Returned(e)) if e.as_debug() == "Custom { kind: Other }")
        );

        let record = round_trip(Outcome::Panicked(Box::new("boom: ünïcode")));
        let Some(Outcome::Panicked(payload)) = record.outcome else {
            panic!("expected a panic");
        };
        assert_eq!(panic_message(payload.as_ref()), Some("boom: ünïcode"));

        let record = round_trip(Outcome::Panicked(Box::new(42_u32)));
        let Some(Outcome::Panicked(payload)) = record.outcome else {
            panic!("expected a panic");
        };
        assert_eq!(panic_message(payload.as_ref()), None);

        let record = round_trip(Outcome::Runtime(Error::NotIsolated {
            namespace: "cookie 7".into(),
        }));
        assert!(
            matches!(record.outcome, Some(Outcome::Runtime(Error::InChild { message })) if message.contains("cookie 7"))
        );

        let record = round_trip(Outcome::Runtime(Error::TimedOut {
            after: Duration::from_millis(1500),
            stopped: Stopped::LeftRunning,
        }));
        assert!(matches!(
            record.outcome,
            Some(Outcome::Runtime(Error::TimedOut { after, stopped: Stopped::Process }))
                if after == Duration::from_millis(1500)
        ));
    }

    #[test]
    fn a_record_without_an_outcome_says_only_whether_the_body_started() {
        let record = Record::decode(&[]).expect("empty is valid");
        assert!(!record.started && record.outcome.is_none());
        let record = Record::decode(&started_frame()).expect("started is valid");
        assert!(record.started && record.outcome.is_none());
    }

    #[test]
    fn a_record_cut_short_is_an_error() {
        let mut bytes = started_frame();
        let error = TestError::from_debug("an error".into());
        bytes.extend(outcome_frame(&Outcome::Returned(error)));
        for cut in 1..bytes.len() {
            if cut == started_frame().len() {
                continue;
            }
            assert!(Record::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Record::decode(&[9, 0, 0, 0, 0]).is_err(), "unknown tag");
    }
}
