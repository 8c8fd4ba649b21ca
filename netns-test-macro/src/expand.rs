//! Emission: a validated test becomes a plain `#[test]` that calls the runtime.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use crate::args::Args;
use crate::item::{self, Param, Registered, ShouldPanic, TestFn};
use crate::noted;

/// Expands the attribute; `tokio` says whether the runtime can run async
/// tests. On error, the user's item is emitted beside the errors, so that no
/// follow-on errors appear.
pub(crate) fn netns_test(args: TokenStream, item: TokenStream, tokio: bool) -> TokenStream {
    let function = match item::parse_fn(item.clone()) {
        Ok(function) => function,
        Err(error) => return with_error(item, error),
    };
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(error) => return with_error(not_a_test(&function), error),
    };
    match TestFn::validate(&args, function.clone(), tokio) {
        Ok(test) => expand(&args, test),
        Err(error) => with_error(not_a_test(&function), error),
    }
}

/// The function as it was, and no test now: warnings about it would only add
/// noise, and keeping it means nothing else reports it missing.
fn not_a_test(function: &ItemFn) -> TokenStream {
    quote! { #[allow(dead_code, unused)] #function }
}

fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote! { #error #item }
}

fn expand(args: &Args, test: TestFn) -> TokenStream {
    let krate = match &args.krate {
        Some((path, _)) => path.to_token_stream(),
        None => quote! { ::netns_test_runtime },
    };
    // Every path into the runtime goes through this one import, in each
    // scope that needs it: a wrong `crate = "..."` is then one error, on
    // the path, and nothing else is reported of it.
    let private = syn::Ident::new("__netns_test_private", Span::call_site());
    let import = quote! { use #krate::__private as #private; };
    let checks = type_checks(&test.function.sig, args, &import, &private);
    let ItemFn {
        attrs,
        vis,
        sig,
        mut block,
    } = test.function;
    if test.returns_result.is_some() {
        noted::note_errors(&mut block, &private);
    }
    let name = &sig.ident;
    let name_text = name.to_string();
    let ns = syn::Ident::new("__netns_ns", Span::mixed_site());
    let registered = syn::Ident::new("__netns_test", Span::mixed_site());
    let arg = match test.param {
        Param::None => quote! {},
        Param::ByRef => quote! { &#ns },
        Param::ByValue | Param::Network => quote! { #ns },
    };
    let call = if sig.asyncness.is_some() {
        let flavor = match &args.threads {
            Some((Some(threads), span)) => {
                let threads = *threads as usize;
                quote_spanned! {*span=>
                    #private::Flavor::MultiThread(::core::option::Option::Some(#threads))
                }
            }
            Some((None, span)) => quote_spanned! {*span=>
                #private::Flavor::MultiThread(::core::option::Option::None)
            },
            None => quote! { #private::Flavor::CurrentThread },
        };
        // Pinned here and passed as `Pin<&mut dyn Future>`, so that one
        // `block_on` serves every async test.
        let body = syn::Ident::new("__netns_body", Span::mixed_site());
        quote! {{
            let #body = ::core::pin::pin!(async move { #private::TestResult::into_test_result(#name(#arg).await) });
            #private::block_on(#private::Tokio, #flavor, #body)
        }}
    } else {
        quote! { #private::TestResult::into_test_result(#name(#arg)) }
    };
    let body = match (test.param, &args.network) {
        (Param::Network, Some((declare, _))) => {
            quote! { #private::Body::WithNetwork(#declare, |#ns| #call) }
        }
        (Param::None, _) => quote! { #private::Body::Plain(|| #call) },
        _ => quote! { #private::Body::WithNs(|#ns| #call) },
    };
    // Only the options given, over the runtime's defaults.
    let mut options = Vec::new();
    if let Some((millis, _)) = &args.timeout_ms {
        options.push(quote! {
            timeout: ::core::option::Option::Some(::core::time::Duration::from_millis(#millis))
        });
    }
    if let Some((seed, _)) = &args.seed {
        options.push(quote! { seed: ::core::option::Option::Some(#seed) });
    }
    for (given, field) in [
        (args.sysfs.is_some(), "sysfs"),
        (args.process.is_some(), "process"),
        (args.capture.is_some(), "capture"),
    ] {
        let field = syn::Ident::new(field, Span::call_site());
        if given {
            options.push(quote! { #field: true });
        }
    }
    let test_attr = match test.registered {
        Registered::Here => quote! { #[::core::prelude::v1::test] },
        Registered::ByTestBelow | Registered::ByTestCase => quote! {},
    };
    let should_panic = should_panic(&test.should_panic, &private);
    // The signature names no path of the runtime, which only the body's
    // import may do.
    let (output, returned) = match test.returns_result {
        Some(span) => (
            quote_spanned! {span=> -> impl ::std::process::Termination },
            quote! { ::core::result::Result<(), #private::TestError> },
        ),
        None => (quote! {}, quote! { () }),
    };
    quote! {
        #checks
        #(#attrs)*
        #test_attr
        #vis fn #name() #output {
            #import
            #sig #block
            // Registered, so that a helper process can find this body by
            // its path without libtest.
            let #registered = #private::register!(#private::Test {
                path: ::core::concat!(::core::module_path!(), "::", #name_text),
                should_panic: #should_panic,
                options: #private::Options { #(#options,)* ..#private::Options::DEFAULT },
                body: #body,
                runs: #private::Runs::new(),
            });
            #private::run::<#returned>(#registered)
        }
    }
}

/// An expression of type `__private::ShouldPanic`.
fn should_panic(should_panic: &ShouldPanic, private: &syn::Ident) -> TokenStream {
    match should_panic {
        ShouldPanic::No => quote! { #private::ShouldPanic::No },
        ShouldPanic::Yes => quote! { #private::ShouldPanic::Yes },
        ShouldPanic::Expected(expected) => {
            quote! { #private::ShouldPanic::WithMessage(#expected) }
        }
        ShouldPanic::If {
            predicate,
            then,
            otherwise,
        } => {
            let then = self::should_panic(then, private);
            let otherwise = self::should_panic(otherwise, private);
            quote! { if ::core::cfg!(#predicate) { #then } else { #otherwise } }
        }
    }
}

/// Checks the types the generated test relies on, outside the `#[test]`
/// function: rustc drops a `#[test]` function, and so its errors, from builds
/// that are not test builds. In test builds the calls inside the function
/// report the same errors, so the checks are left out there. The import is
/// checked even when nothing else is, so that a wrong `crate = "..."` fails
/// every build.
fn type_checks(
    sig: &syn::Signature,
    args: &Args,
    import: &TokenStream,
    private: &syn::Ident,
) -> TokenStream {
    let returned = match &sig.output {
        ReturnType::Type(_, ty) => quote_spanned! {ty.span()=>
            let _ = <#ty as #private::TestResult>::into_test_result;
        },
        ReturnType::Default => quote! {},
    };
    let network = match &args.network {
        Some((declare, _)) => quote_spanned! {declare.span()=>
            let _: fn() -> #private::NetworkBuilder = #declare;
        },
        None => quote! {},
    };
    quote! {
        #[cfg(not(test))]
        const _: () = {
            #import
            #returned
            #network
        };
    }
}

/// Snapshots of whole expansions, under `tests/expansions/`. After a change
/// to the expansion, regenerate them with
/// `UPDATE_EXPECT=1 cargo test -p netns-test-macro` and review the diff.
#[cfg(test)]
mod tests {
    use expect_test::{ExpectFile, expect_file};

    use super::*;

    fn check(args: &str, item: &str, expected: ExpectFile) {
        check_with(args, item, true, expected);
    }

    fn check_with(args: &str, item: &str, tokio: bool, expected: ExpectFile) {
        let args: TokenStream = args.parse().expect("arguments");
        let item: TokenStream = item.parse().expect("an item");
        let expanded = netns_test(args, item, tokio);
        let file = syn::parse2(expanded).expect("the expansion parses as items");
        expected.assert_eq(&prettyplease::unparse(&file));
    }

    #[test]
    fn plain() {
        check(
            "",
            "fn binds() { body(); }",
            expect_file!["../tests/expansions/plain.expanded.rs"],
        );
    }

    #[test]
    fn an_existing_test_attribute_is_kept_and_not_added() {
        check(
            "",
            "#[test] fn t() {}",
            expect_file!["../tests/expansions/test_attribute.expanded.rs"],
        );
    }

    #[test]
    fn attributes_stay_and_should_panic_reaches_the_runtime() {
        check(
            "",
            "/// docs\n#[ignore = \"slow\"] #[should_panic(expected = \"boom\")] fn t() {}",
            expect_file!["../tests/expansions/should_panic.expanded.rs"],
        );
    }

    #[test]
    fn should_panic_under_cfg_attr_is_decided_where_the_test_compiles() {
        check(
            "",
            "#[cfg_attr(unix, should_panic = \"on unix\")] #[should_panic] fn t() {}",
            expect_file!["../tests/expansions/cfg_attr.expanded.rs"],
        );
    }

    #[test]
    fn a_result_test_returns_the_runtime_error_type() {
        check(
            "timeout = \"3s\", seed = 7, sysfs, process, capture",
            "fn t(ns: NetNs) -> std::io::Result<()> { Ok(()) }",
            expect_file!["../tests/expansions/result_with_handle.expanded.rs"],
        );
    }

    #[test]
    fn an_async_test_is_pinned_once_and_crate_is_honoured() {
        check(
            "threads = 2, crate = \"my::netns\"",
            "async fn t(ns: &NetNs) -> Result<(), String> { Ok(()) }",
            expect_file!["../tests/expansions/async.expanded.rs"],
        );
    }

    #[test]
    fn a_network_is_built_from_the_function_named() {
        check(
            "network = nets::two_homes",
            "async fn t(net: &Network) {}",
            expect_file!["../tests/expansions/network.expanded.rs"],
        );
    }

    #[test]
    fn an_async_test_without_tokio_is_one_error_on_async() {
        check_with(
            "",
            "async fn t() {}",
            false,
            expect_file!["../tests/expansions/async_without_tokio.expanded.rs"],
        );
    }

    #[test]
    fn a_case_of_test_case_gets_no_second_test_attribute() {
        check(
            "",
            "#[allow(clippy::bool_assert_comparison)] #[allow(unknown_lints, clippy::redundant_test_prefix)] fn test_case_1_v4() { let _result = super::t(4); _result }",
            expect_file!["../tests/expansions/test_case.expanded.rs"],
        );
    }

    #[test]
    fn an_error_keeps_the_function_and_adds_no_test() {
        check(
            "bogus",
            "fn t() {}",
            expect_file!["../tests/expansions/error.expanded.rs"],
        );
    }
}
