//! netns-test's environment variables, read strictly: a value that is not
//! understood, or not UTF-8, is an error that names the variable and the
//! values it takes, never silently ignored.

use std::env::VarError;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// The value of `name`, if set.
pub(crate) fn var(name: &'static str, expected: &'static str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(value)) => Err(Error::BadEnv {
            name,
            value: value.to_string_lossy().into_owned(),
            expected,
        }),
    }
}

/// The value of `name` among `choices`, each a text and what it means;
/// `unset` when the variable is not set. Any other value is an error that
/// names the variable and `expected`.
pub(crate) fn choice<T: Copy>(
    name: &'static str,
    expected: &'static str,
    unset: T,
    choices: &[(&str, T)],
) -> Result<T, Error> {
    let Some(value) = var(name, expected)? else {
        return Ok(unset);
    };
    match choices.iter().find(|(text, _)| *text == value) {
        Some(&(_, meaning)) => Ok(meaning),
        None => Err(Error::BadEnv {
            name,
            value,
            expected,
        }),
    }
}

/// What to do with a test where no mode works: `NETNS_TEST_UNAVAILABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Fail it, with the causes found (the default).
    Fail,
    /// Pass it, with a loud `SKIPPED` line.
    Skip,
}

/// Reads `NETNS_TEST_UNAVAILABLE`.
pub(crate) fn unavailable() -> Result<Unavailable, Error> {
    choice(
        "NETNS_TEST_UNAVAILABLE",
        "`skip` or `fail`",
        Unavailable::Fail,
        &[("fail", Unavailable::Fail), ("skip", Unavailable::Skip)],
    )
}

/// Reads `NETNS_TEST_TIMEOUT`, the timeout of tests that set none.
pub(crate) fn timeout() -> Result<Option<Duration>, Error> {
    const EXPECTED: &str = "a whole number followed by `ms`, `s` or `m`, e.g. `30s`";
    let Some(text) = var("NETNS_TEST_TIMEOUT", EXPECTED)? else {
        return Ok(None);
    };
    match parse_duration(&text) {
        Some(Duration::ZERO) => Err(Error::BadEnv {
            name: "NETNS_TEST_TIMEOUT",
            value: text,
            expected: "a timeout longer than zero, e.g. `30s`",
        }),
        Some(timeout) => Ok(Some(timeout)),
        None => Err(Error::BadEnv {
            name: "NETNS_TEST_TIMEOUT",
            value: text,
            expected: EXPECTED,
        }),
    }
}

/// When to keep a test's packet capture: `NETNS_TEST_CAPTURE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture {
    /// Capture nothing (the default).
    Off,
    /// Capture, and keep the file of a test that fails.
    Failed,
    /// Capture, and keep every test's file.
    All,
}

/// Reads `NETNS_TEST_CAPTURE`.
pub(crate) fn capture() -> Result<Capture, Error> {
    choice(
        "NETNS_TEST_CAPTURE",
        "`off`, `failed` or `all`",
        Capture::Off,
        &[
            ("off", Capture::Off),
            ("failed", Capture::Failed),
            ("all", Capture::All),
        ],
    )
}

/// Reads `NETNS_TEST_CAPTURE_DIR`, where capture files go.
pub(crate) fn capture_dir() -> Option<PathBuf> {
    std::env::var_os("NETNS_TEST_CAPTURE_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// The most a test's capture file holds unless `NETNS_TEST_CAPTURE_LIMIT`
/// says otherwise: 64 MiB.
pub(crate) const DEFAULT_CAPTURE_LIMIT: u64 = 64 << 20;

/// Reads `NETNS_TEST_SEED`: the seed of every test's draws, to replay a
/// failure; `None` where unset.
pub(crate) fn seed() -> Result<Option<u64>, Error> {
    const EXPECTED: &str =
        "a whole number from 0 to 18446744073709551615, as a failure's report prints it";
    let Some(text) = var("NETNS_TEST_SEED", EXPECTED)? else {
        return Ok(None);
    };
    text.trim().parse().map(Some).map_err(|_| Error::BadEnv {
        name: "NETNS_TEST_SEED",
        value: text,
        expected: EXPECTED,
    })
}

/// Reads `NETNS_TEST_CAPTURE_LIMIT`: how many bytes of packets one test's
/// capture file may hold; packets past it are counted, not written.
pub(crate) fn capture_limit() -> Result<u64, Error> {
    const EXPECTED: &str =
        "a whole number of bytes, or one followed by `KiB`, `MiB` or `GiB`, e.g. `64MiB`";
    let Some(text) = var("NETNS_TEST_CAPTURE_LIMIT", EXPECTED)? else {
        return Ok(DEFAULT_CAPTURE_LIMIT);
    };
    parse_size(&text).ok_or(Error::BadEnv {
        name: "NETNS_TEST_CAPTURE_LIMIT",
        value: text,
        expected: EXPECTED,
    })
}

/// Parses `"1048576"`, `"512KiB"`, `"64MiB"` or `"1GiB"` into bytes.
fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = number_and_unit(text)?;
    let shift = match unit {
        "" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// Parses `"500ms"`, `"10s"` or `"2m"`, as the attribute's `timeout` does
/// (`netns-test-macro/src/args.rs`, which cannot share this code: a
/// proc-macro crate cannot depend on the crate that depends on it).
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = number_and_unit(text)?;
    let millis = match unit {
        "ms" => number,
        "s" => number.checked_mul(1_000)?,
        "m" => number.checked_mul(60_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

/// A whole number at the start of `text`, and what follows it.
fn number_and_unit(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    Some((number.parse().ok()?, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same table as the macro's `durations` test: keep them in step.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in [
            "10",
            "s",
            "1.5s",
            "10 s",
            "-1s",
            "3h",
            "",
            "99999999999999999999s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        for bad in [
            "",
            "MiB",
            "64MB",
            "64mib",
            "64 MiB",
            "1.5MiB",
            "-1",
            "64M",
            "1TiB",
            "99999999999999999999",
            "17179869184GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
