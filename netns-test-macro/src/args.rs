//! Parsing and validation of the attribute's arguments.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Path};

/// What `#[netns_test(...)]` may take, as listed in the unknown-argument error.
const VALID: &str = "`threads`, `threads = N`, `timeout = \"10s\"`, `seed = N`, `network = path`, `sysfs`, `process`, `capture` and `crate = \"path\"`";

/// The attribute's arguments, each with the span of its key.
#[derive(Default)]
pub(crate) struct Args {
    /// Worker threads of the async runtime; `None` inside: tokio's default.
    pub(crate) threads: Option<(Option<u32>, Span)>,
    /// Timeout of the test, in milliseconds.
    pub(crate) timeout_ms: Option<(u64, Span)>,
    /// The seed of the test's draws.
    pub(crate) seed: Option<(u64, Span)>,
    /// The function that declares the test's network.
    pub(crate) network: Option<(Path, Span)>,
    /// The path to the runtime crate, for users who re-export it.
    pub(crate) krate: Option<(Path, Span)>,
    /// Mount a sysfs of the test's namespace on `/sys`, privately.
    pub(crate) sysfs: Option<((), Span)>,
    /// Run this test in a process of its own, whatever the mode.
    pub(crate) process: Option<((), Span)>,
    /// Capture its packets, and keep them if it fails.
    pub(crate) capture: Option<((), Span)>,
}

impl Args {
    /// Parses the tokens inside `#[netns_test(...)]`, reporting every bad
    /// argument at once, each on its own tokens.
    pub(crate) fn parse(tokens: TokenStream) -> Result<Self, syn::Error> {
        let mut args = Args::default();
        let mut errors = Errors::default();
        let parser = syn::meta::parser(|meta| {
            let key = meta.path.clone();
            let name = key.get_ident().map(ToString::to_string).unwrap_or_default();
            let value: Option<Expr> = if meta.input.peek(syn::Token![=]) {
                Some(meta.value()?.parse()?)
            } else {
                None
            };
            match name.as_str() {
                "threads" => {
                    let parsed = value.as_ref().map(parse_threads).transpose();
                    errors.set(&mut args.threads, parsed, &key);
                }
                "timeout" => {
                    let parsed = value
                        .as_ref()
                        .ok_or_else(|| needs_value(&key, "timeout = \"10s\""))
                        .and_then(parse_timeout);
                    errors.set(&mut args.timeout_ms, parsed, &key);
                }
                "seed" => {
                    let parsed = value
                        .as_ref()
                        .ok_or_else(|| needs_value(&key, "seed = 7"))
                        .and_then(parse_seed);
                    errors.set(&mut args.seed, parsed, &key);
                }
                "network" => {
                    let parsed = value
                        .as_ref()
                        .ok_or_else(|| needs_value(&key, "network = two_homes"))
                        .and_then(parse_network);
                    errors.set(&mut args.network, parsed, &key);
                }
                "sysfs" => errors.set(&mut args.sysfs, flag("sysfs", value.as_ref()), &key),
                "process" => errors.set(&mut args.process, flag("process", value.as_ref()), &key),
                "capture" => errors.set(&mut args.capture, flag("capture", value.as_ref()), &key),
                "crate" => {
                    let parsed = value
                        .as_ref()
                        .ok_or_else(|| needs_value(&key, "crate = \"my_crate::netns\""))
                        .and_then(parse_crate);
                    errors.set(&mut args.krate, parsed, &key);
                }
                _ => errors.push(syn::Error::new_spanned(
                    &key,
                    format!(
                        "unknown argument `{}`; `#[netns_test]` takes {VALID}",
                        quote::ToTokens::to_token_stream(&key)
                            .to_string()
                            .replace(' ', "")
                    ),
                )),
            }
            Ok(())
        });
        parser.parse2(tokens)?;
        errors.finish(args)
    }
}

/// Collects errors so that all of them are reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Stores a parsed value in its slot, or records why it cannot be stored.
    fn set<T>(&mut self, slot: &mut Option<(T, Span)>, parsed: syn::Result<T>, key: &Path) {
        if slot.is_some() {
            let name = key.get_ident().map(ToString::to_string).unwrap_or_default();
            self.push(syn::Error::new_spanned(
                key,
                format!("duplicate argument `{name}`; give it once"),
            ));
            return;
        }
        match parsed {
            Ok(value) => *slot = Some((value, key.span())),
            Err(error) => self.push(error),
        }
    }

    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// A key that takes no value, such as `sysfs`.
fn flag(name: &str, value: Option<&Expr>) -> syn::Result<()> {
    match value {
        None => Ok(()),
        Some(value) => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` takes no value: write `#[netns_test({name})]`"),
        )),
    }
}

fn needs_value(key: &Path, example: &str) -> syn::Error {
    let name = key.get_ident().map(ToString::to_string).unwrap_or_default();
    syn::Error::new_spanned(key, format!("`{name}` needs a value, e.g. `{example}`"))
}

fn parse_seed(value: &Expr) -> syn::Result<u64> {
    let error = || {
        syn::Error::new_spanned(
            value,
            "`seed` takes an integer literal from 0 to 18446744073709551615, e.g. `seed = 7`",
        )
    };
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int.base10_parse().map_err(|_| error()),
        _ => Err(error()),
    }
}

fn parse_network(value: &Expr) -> syn::Result<Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() => Ok(path.path.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            "`network` takes the path of a function that declares the network, `fn two_homes() -> NetworkBuilder`, e.g. `network = two_homes`",
        )),
    }
}

fn parse_threads(value: &Expr) -> syn::Result<u32> {
    let error = || {
        syn::Error::new_spanned(
            value,
            "`threads` takes a positive integer literal, e.g. `threads = 4`, or no value for tokio's default count",
        )
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = value
    else {
        return Err(error());
    };
    let threads: u32 = int.base10_parse().map_err(|_| error())?;
    if threads == 0 {
        return Err(syn::Error::new(
            int.span(),
            "`threads` must be at least 1: it is the number of runtime worker threads",
        ));
    }
    Ok(threads)
}

fn parse_timeout(value: &Expr) -> syn::Result<u64> {
    let error = || {
        syn::Error::new_spanned(
            value,
            "`timeout` takes a duration in a string: a whole number followed by `ms`, `s` or `m`, e.g. `timeout = \"10s\"`",
        )
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Str(text),
        ..
    }) = value
    else {
        return Err(error());
    };
    let millis = parse_duration_ms(&text.value()).ok_or_else(error)?;
    if millis == 0 {
        return Err(syn::Error::new(
            text.span(),
            "`timeout` must be longer than zero",
        ));
    }
    Ok(millis)
}

/// Parses `"500ms"`, `"10s"` or `"2m"` into milliseconds. The runtime parses
/// `NETNS_TEST_TIMEOUT` with the same grammar (`netns-test-runtime/src/env.rs`),
/// and its `durations` test has the same table as this one's.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

fn parse_crate(value: &Expr) -> syn::Result<Path> {
    let error = || {
        syn::Error::new_spanned(
            value,
            "`crate` takes a path in a string, e.g. `crate = \"my_crate::netns\"`",
        )
    };
    let Expr::Lit(ExprLit {
        lit: Lit::Str(text),
        ..
    }) = value
    else {
        return Err(error());
    };
    text.parse::<Path>().map_err(|_| error())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("0s"), Some(0));
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms("1.5s"), None);
        assert_eq!(parse_duration_ms("10 s"), None);
        assert_eq!(parse_duration_ms("99999999999999999999s"), None);
        for bad in ["-1s", "3h", ""] {
            assert_eq!(parse_duration_ms(bad), None, "{bad:?}");
        }
    }
}
