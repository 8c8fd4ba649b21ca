//! Expansion of `#[netns_test]` into a plain `#[test]` that calls the runtime.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Item, ItemFn, Meta, ReturnType, Token, Type};

use crate::args::{Args, Errors};

/// Expands the attribute. On error, the user's item is emitted unchanged beside
/// the errors, so that no follow-on errors appear.
pub(crate) fn netns_test(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            let error = syn::Error::new(
                item_keyword_span(&other),
                "`#[netns_test]` applies only to functions: `fn name() { ... }` or `async fn name() { ... }`",
            );
            return with_error(item, error);
        }
        Err(error) => return with_error(item, error),
    };
    match Args::parse(args).and_then(|args| Test::new(args, &function)) {
        Ok(test) => test.expand(function),
        // The function stays, so that nothing else reports it missing; it is
        // no test now, and warnings about it would only add noise.
        Err(error) => with_error(quote! { #[allow(dead_code, unused)] #function }, error),
    }
}

fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote! { #error #item }
}

/// The span of the keyword that says what kind of item this is.
fn item_keyword_span(item: &Item) -> Span {
    match item {
        Item::Struct(item) => item.struct_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Impl(item) => item.impl_token.span,
        Item::Const(item) => item.const_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Use(item) => item.use_token.span,
        other => other.span(),
    }
}

/// How the test's one optional parameter receives the namespace handle.
enum Param {
    None,
    ByRef,
    ByValue,
}

/// A validated test function.
struct Test {
    args: Args,
    param: Param,
    has_test_attr: bool,
    /// An expression of type `__private::ShouldPanic`.
    should_panic: TokenStream,
    /// The return type of the generated `#[test]`, if any.
    output: Option<TokenStream>,
}

impl Test {
    /// Checks everything `#[netns_test]` rejects, reporting all of it at once.
    fn new(args: Args, function: &ItemFn) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let sig = &function.sig;
        if let Some(token) = &sig.constness {
            errors.push(syn::Error::new(
                token.span,
                "a test cannot be a `const fn`; remove `const`",
            ));
        }
        if let Some(token) = &sig.unsafety {
            errors.push(syn::Error::new(
                token.span,
                "a test cannot be an `unsafe fn`; remove `unsafe` and use an `unsafe` block inside the body",
            ));
        }
        if let Some(abi) = &sig.abi {
            errors.push(syn::Error::new_spanned(
                abi,
                "a test cannot be an `extern` fn; remove the ABI",
            ));
        }
        let generic = "a test cannot be generic: nothing would choose its type or lifetime parameters; remove them";
        if !sig.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(&sig.generics, generic));
        }
        if let Some(where_clause) = &sig.generics.where_clause {
            errors.push(syn::Error::new_spanned(where_clause, generic));
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(syn::Error::new_spanned(
                variadic,
                "a test cannot be variadic; it may take one parameter, `&NetNs` or `NetNs`",
            ));
        }
        if let (None, Some((_, span))) = (&sig.asyncness, &args.threads) {
            errors.push(syn::Error::new(
                *span,
                "`threads` applies only to an `async fn`: threads spawned from a sync body already share its network namespace, so spawn them with `std::thread::spawn`",
            ));
        }
        for attr in &function.attrs {
            if is_path(attr.path(), &["tokio", "test"]) {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "`#[tokio::test]` must come above `#[netns_test]`, so that tokio's runtime is built inside the namespace; or drop it and write `#[netns_test(threads = N)]`",
                ));
            }
        }
        let param = match parse_param(&sig.inputs) {
            Ok(param) => param,
            Err(error) => {
                errors.push(error);
                Param::None
            }
        };
        let output = match &sig.output {
            ReturnType::Type(_, ty) if !is_unit(ty) => {
                let krate = krate(&args);
                Some(quote_spanned! {ty.span()=>
                    ::core::result::Result<(), #krate::__private::TestError>
                })
            }
            _ => None,
        };
        let test = Test {
            has_test_attr: function.attrs.iter().any(is_test_attr),
            should_panic: should_panic(&function.attrs, &krate(&args)),
            param,
            output,
            args,
        };
        errors.finish(test)
    }

    fn expand(self, function: ItemFn) -> TokenStream {
        let krate = krate(&self.args);
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = function;
        let name = &sig.ident;
        let name_text = name.to_string();
        let ns = syn::Ident::new("__netns_ns", Span::mixed_site());
        let arg = match self.param {
            Param::None => quote! {},
            Param::ByRef => quote! { &#ns },
            Param::ByValue => quote! { #ns },
        };
        let (handle, take_handle) = match self.param {
            Param::None => (false, quote! { ::core::mem::drop(#ns); }),
            _ => (true, quote! { let #ns = #ns.into_netns(); }),
        };
        let call = if sig.asyncness.is_some() {
            let threads = match &self.args.threads {
                Some((threads, span)) => {
                    let threads = *threads as usize;
                    quote_spanned! {*span=> ::core::option::Option::Some(#threads) }
                }
                None => quote! { ::core::option::Option::None },
            };
            quote! {
                #krate::__private::block_on(#krate::__private::Tokio, #threads, #name(#arg))
            }
        } else {
            quote! { #name(#arg) }
        };
        let timeout = match &self.args.timeout_ms {
            Some((millis, _)) => {
                quote! { ::core::option::Option::Some(::core::time::Duration::from_millis(#millis)) }
            }
            None => quote! { ::core::option::Option::None },
        };
        let test_attr = if self.has_test_attr {
            quote! {}
        } else {
            quote! { #[::core::prelude::v1::test] }
        };
        let should_panic = &self.should_panic;
        let sysfs = self.args.sysfs.is_some();
        let checks = type_checks(&sig, &krate);
        let (output, returned) = match &self.output {
            Some(output) => (quote! { -> #output }, output.clone()),
            None => (quote! {}, quote! { () }),
        };
        quote! {
            #checks
            #(#attrs)*
            #test_attr
            #vis fn #name() #output {
                #sig #block
                // Registered, so that a helper process can find this body by
                // its path without libtest.
                #[#krate::__private::linkme::distributed_slice(#krate::__private::TESTS)]
                #[linkme(crate = #krate::__private::linkme)]
                static __NETNS_TEST: #krate::__private::Test = #krate::__private::Test {
                    path: ::core::concat!(::core::module_path!(), "::", #name_text),
                    should_panic: #should_panic,
                    timeout: #timeout,
                    sysfs: #sysfs,
                    handle: #handle,
                    body: |#ns| {
                        #take_handle
                        #krate::__private::report(#call)
                    },
                };
                #krate::__private::run::<#returned>(&__NETNS_TEST)
            }
        }
    }
}

/// Checks the types the generated test relies on, outside the `#[test]`
/// function: rustc drops a `#[test]` function, and so its errors, from builds
/// that are not test builds. In test builds the calls inside the function
/// report the same errors, so the checks are left out there.
fn type_checks(sig: &syn::Signature, krate: &TokenStream) -> TokenStream {
    let returned = match &sig.output {
        ReturnType::Type(_, ty) => quote_spanned! {ty.span()=>
            #krate::__private::assert_report::<#ty>();
        },
        ReturnType::Default => quote! {},
    };
    let runtime = match &sig.asyncness {
        Some(asyncness) => {
            // The error belongs on `async`, so every token of the check is spanned there.
            let krate = respan(krate.clone(), asyncness.span);
            quote_spanned! {asyncness.span=>
                #krate::__private::assert_async_runtime::<#krate::__private::Tokio>();
            }
        }
        None => quote! {},
    };
    quote! {
        #[cfg(not(test))]
        const _: () = {
            #returned
            #runtime
        };
    }
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

fn krate(args: &Args) -> TokenStream {
    match &args.krate {
        Some((path, _)) => path.to_token_stream(),
        None => quote! { ::netns_test_runtime },
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// Whether `path` is `expected`, optionally with a leading `::`.
fn is_path(path: &syn::Path, expected: &[&str]) -> bool {
    path.segments.len() == expected.len()
        && path
            .segments
            .iter()
            .zip(expected)
            .all(|(segment, expected)| segment.ident == expected)
}

/// `#[test]`, or libtest's attribute spelled through a prelude path.
fn is_test_attr(attr: &Attribute) -> bool {
    let path = attr.path();
    let Some(last) = path.segments.last() else {
        return false;
    };
    let first = &path.segments[0].ident;
    last.ident == "test" && (path.segments.len() == 1 || first == "core" || first == "std")
}

fn parse_param(inputs: &Punctuated<FnArg, Token![,]>) -> syn::Result<Param> {
    let mut params = inputs.iter();
    let Some(first) = params.next() else {
        return Ok(Param::None);
    };
    let supported =
        "a test may take one parameter, the handle to its namespace: `&NetNs` or `NetNs`";
    if let Some(extra) = params.next() {
        return Err(syn::Error::new_spanned(
            extra,
            format!("too many parameters; {supported}"),
        ));
    }
    let ty = match first {
        FnArg::Receiver(receiver) => {
            return Err(syn::Error::new_spanned(
                receiver,
                "a test cannot take `self`: write a free function; it may take `&NetNs` or `NetNs`",
            ));
        }
        FnArg::Typed(typed) => &*typed.ty,
    };
    match ty {
        Type::Reference(reference)
            if reference.mutability.is_none() && is_netns(&reference.elem) =>
        {
            Ok(Param::ByRef)
        }
        ty if is_netns(ty) => Ok(Param::ByValue),
        ty => Err(syn::Error::new_spanned(
            ty,
            format!("unsupported parameter type; {supported}"),
        )),
    }
}

fn is_netns(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|segment| segment.ident == "NetNs" && segment.arguments.is_empty())
        }
        Type::Paren(inner) => is_netns(&inner.elem),
        Type::Group(inner) => is_netns(&inner.elem),
        _ => false,
    }
}

/// An expression that says whether libtest will expect this test to panic.
///
/// The runtime needs it: when the namespace cannot be made, a `should_panic`
/// test must not be failed by a panic, which libtest would count as a pass.
/// A `cfg_attr` is evaluated where the test is compiled, with `cfg!`.
fn should_panic(attrs: &[Attribute], krate: &TokenStream) -> TokenStream {
    let mut expr = quote! { #krate::__private::ShouldPanic::No };
    for attr in attrs.iter().rev() {
        if let Some(found) = should_panic_meta(&attr.meta, krate) {
            expr = found;
        } else if attr.path().is_ident("cfg_attr") {
            let Ok(list) = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                continue;
            };
            let mut items = list.iter();
            let Some(predicate) = items.next() else {
                continue;
            };
            if let Some(found) = items.find_map(|meta| should_panic_meta(meta, krate)) {
                expr = quote! { if ::core::cfg!(#predicate) { #found } else { #expr } };
            }
        }
    }
    expr
}

fn should_panic_meta(meta: &Meta, krate: &TokenStream) -> Option<TokenStream> {
    if !meta.path().is_ident("should_panic") {
        return None;
    }
    let expected = match meta {
        Meta::Path(_) => None,
        Meta::NameValue(name_value) => Some(name_value.value.to_token_stream()),
        Meta::List(list) => list
            .parse_args_with(Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated)
            .ok()
            .and_then(|items| {
                items
                    .into_iter()
                    .find(|item| item.path.is_ident("expected"))
                    .map(|item| item.value.to_token_stream())
            }),
    };
    Some(match expected {
        Some(expected) => quote! { #krate::__private::ShouldPanic::WithMessage(#expected) },
        None => quote! { #krate::__private::ShouldPanic::Yes },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &str, item: &str) -> String {
        let args: TokenStream = args.parse().expect("arguments");
        let item: TokenStream = item.parse().expect("an item");
        netns_test(args, item).to_string()
    }

    #[test]
    fn a_plain_test_gets_one_test_attribute() {
        let expanded = expand("", "fn t() { body(); }");
        assert_eq!(
            expanded.matches(":: core :: prelude :: v1 :: test").count(),
            1,
            "{expanded}"
        );
        assert!(expanded.contains("fn t ()"), "{expanded}");
        assert!(expanded.contains("body ()"), "{expanded}");
        assert!(
            expanded.contains(":: netns_test_runtime :: __private :: run :: < () >"),
            "{expanded}"
        );
        assert!(expanded.contains("handle : false"), "{expanded}");
        assert!(!expanded.contains("compile_error"), "{expanded}");
    }

    #[test]
    fn an_existing_test_attribute_is_kept_and_not_added() {
        let expanded = expand("", "#[test] fn t() {}");
        assert_eq!(expanded.matches("# [test]").count(), 1, "{expanded}");
        assert!(!expanded.contains("prelude :: v1 :: test"), "{expanded}");
    }

    #[test]
    fn attributes_stay_and_should_panic_reaches_the_runtime() {
        let expanded = expand(
            "",
            "/// docs\n#[ignore = \"slow\"] #[should_panic(expected = \"boom\")] fn t() {}",
        );
        assert!(expanded.contains("# [doc = \" docs\"]"), "{expanded}");
        assert!(expanded.contains("# [ignore = \"slow\"]"), "{expanded}");
        assert!(
            expanded.contains("# [should_panic (expected = \"boom\")]"),
            "{expanded}"
        );
        assert!(
            expanded.contains("ShouldPanic :: WithMessage (\"boom\")"),
            "{expanded}"
        );
    }

    #[test]
    fn a_result_test_returns_the_runtime_error_type() {
        let expanded = expand("", "fn t() -> std::io::Result<()> { Ok(()) }");
        assert!(
            expanded.contains("-> :: core :: result :: Result < () , :: netns_test_runtime :: __private :: TestError >"),
            "{expanded}"
        );
    }

    #[test]
    fn arguments_reach_the_runtime_and_crate_is_honoured() {
        let expanded = expand(
            "threads = 2, timeout = \"3s\", sysfs, crate = \"my::netns\"",
            "async fn t(ns: &NetNs) {}",
        );
        assert!(
            expanded.contains("my :: netns :: __private :: block_on"),
            "{expanded}"
        );
        assert!(expanded.contains("Some (2usize)"), "{expanded}");
        assert!(expanded.contains("from_millis (3000u64)"), "{expanded}");
        assert!(expanded.contains("sysfs : true"), "{expanded}");
        assert!(expanded.contains("handle : true"), "{expanded}");
        assert!(!expanded.contains("netns_test_runtime"), "{expanded}");
    }

    #[test]
    fn an_error_keeps_the_function_and_adds_no_test() {
        let expanded = expand("bogus", "fn t() {}");
        assert!(expanded.contains("compile_error"), "{expanded}");
        assert!(expanded.contains("fn t ()"), "{expanded}");
        assert!(!expanded.contains("prelude :: v1 :: test"), "{expanded}");
    }
}
