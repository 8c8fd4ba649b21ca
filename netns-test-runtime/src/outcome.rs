//! How a body ended, and the record a child process sends of it.
//!
//! Every mode runs a body through [`Outcome::of_body`] and reports through
//! `run::conclude`, so that an outcome means the same thing in every mode.

use std::any::Any;

use crate::__private::{Handle, TestError};
use crate::error::Error;
use crate::netns::{NetNs, catch};

/// How a test's body ended, or why it could not run.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The body returned `()` or `Ok(())`.
    Passed,
    /// The body returned `Err`; this is the error's `Debug` form.
    Returned(String),
    /// The body panicked with this payload.
    Panicked(Box<dyn Any + Send>),
    /// netns-test could not run the body, or lost it.
    Harness(Error),
}

impl Outcome {
    /// Runs a body, with the handle to its namespace when it takes one.
    pub(crate) fn of_body(body: fn(Handle) -> Result<(), TestError>, ns: Option<NetNs>) -> Outcome {
        match catch(|| body(Handle(ns))) {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(error)) => Outcome::Returned(error.into_debug()),
            Err(payload) => Outcome::Panicked(payload),
        }
    }
}

/// The text of a panic payload, when it is a string, as libtest reads it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// A frame of the record: a tag byte, a little-endian `u32` length, the text.
mod tag {
    pub(super) const STARTED: u8 = 1;
    pub(super) const PASSED: u8 = 2;
    pub(super) const RETURNED: u8 = 3;
    pub(super) const PANICKED: u8 = 4;
    pub(super) const PANICKED_OPAQUE: u8 = 5;
    pub(super) const HARNESS: u8 = 6;
}

/// Encodes a frame.
fn frame(tag: u8, text: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(5 + text.len());
    frame.push(tag);
    frame.extend_from_slice(&(text.len() as u32).to_le_bytes());
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// The frame a child writes just before it runs the body.
pub(crate) fn started_frame() -> Vec<u8> {
    frame(tag::STARTED, "")
}

impl Outcome {
    /// The frame a child writes once the body has ended.
    pub(crate) fn to_frame(&self) -> Vec<u8> {
        match self {
            Outcome::Passed => frame(tag::PASSED, ""),
            Outcome::Returned(debug) => frame(tag::RETURNED, debug),
            Outcome::Panicked(payload) => match panic_message(payload.as_ref()) {
                Some(message) => frame(tag::PANICKED, message),
                None => frame(tag::PANICKED_OPAQUE, ""),
            },
            Outcome::Harness(error) => frame(tag::HARNESS, &error.to_string()),
        }
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
                tag::RETURNED => record.outcome = Some(Outcome::Returned(text)),
                tag::PANICKED => record.outcome = Some(Outcome::Panicked(Box::new(text))),
                tag::PANICKED_OPAQUE => record.outcome = Some(Outcome::Panicked(Box::new(()))),
                tag::HARNESS => {
                    record.outcome = Some(Outcome::Harness(Error::InChild { message: text }));
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

    fn round_trip(outcome: Outcome) -> Record {
        let mut bytes = started_frame();
        bytes.extend(outcome.to_frame());
        Record::decode(&bytes).expect("a whole record")
    }

    #[test]
    fn every_outcome_survives_the_trip() {
        let record = round_trip(Outcome::Passed);
        assert!(record.started);
        assert!(matches!(record.outcome, Some(Outcome::Passed)));

        let record = round_trip(Outcome::Returned("Custom { kind: Other }".into()));
        assert!(
            matches!(record.outcome, Some(Outcome::Returned(d)) if d == "Custom { kind: Other }")
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

        let record = round_trip(Outcome::Harness(Error::NotIsolated {
            namespace: "cookie 7".into(),
        }));
        assert!(
            matches!(record.outcome, Some(Outcome::Harness(Error::InChild { message })) if message.contains("cookie 7"))
        );
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
        bytes.extend(Outcome::Returned("an error".into()).to_frame());
        for cut in 1..bytes.len() {
            if cut == started_frame().len() {
                continue;
            }
            assert!(Record::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Record::decode(&[9, 0, 0, 0, 0]).is_err(), "unknown tag");
    }
}
