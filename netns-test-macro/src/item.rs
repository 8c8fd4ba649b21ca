//! Validation of the function under `#[netns_test]` into a typed [`TestFn`].

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Item, ItemFn, Meta, ReturnType, Token, Type};

use crate::args::{Args, Errors};

/// How the test's one optional parameter receives the namespace handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    None,
    ByRef,
    ByValue,
    /// `&Network`, built from the function `network = ...` names.
    Network,
}

/// Whether libtest will expect the test to panic, as its attributes say.
#[derive(Debug)]
pub(crate) enum ShouldPanic {
    No,
    Yes,
    /// `expected = <this expression>`.
    Expected(TokenStream),
    /// A `cfg_attr` that holds a `should_panic`: decided where the test is
    /// compiled, with `cfg!(predicate)`.
    If {
        predicate: TokenStream,
        then: Box<ShouldPanic>,
        otherwise: Box<ShouldPanic>,
    },
}

/// Who registers the test with libtest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registered {
    /// The expansion adds the one `#[test]`.
    Here,
    /// A `#[test]` below `#[netns_test]`, which stays.
    ByTestBelow,
    /// test-case: it writes `#[test]` above each case of a sync function,
    /// where no attribute below can see it, and marks the case in ways that
    /// are recognised (see [`made_by_test_case`]).
    ByTestCase,
}

/// A function `#[netns_test]` accepts.
pub(crate) struct TestFn {
    pub(crate) function: ItemFn,
    pub(crate) param: Param,
    pub(crate) registered: Registered,
    pub(crate) should_panic: ShouldPanic,
    /// The span of the return type when the test returns a `Result`.
    pub(crate) returns_result: Option<Span>,
}

/// Parses the item under the attribute: a function, or an error on the
/// keyword of what it is instead.
pub(crate) fn parse_fn(item: TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(item)? {
        Item::Fn(function) => Ok(function),
        other => Err(syn::Error::new(
            item_keyword_span(&other),
            "`#[netns_test]` applies only to functions: `fn name() { ... }` or `async fn name() { ... }`",
        )),
    }
}

impl TestFn {
    /// Checks everything `#[netns_test]` rejects, reporting all of it at
    /// once; `tokio` says whether the runtime can run async tests.
    pub(crate) fn validate(args: &Args, function: ItemFn, tokio: bool) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let sig = &function.sig;
        if let (Some(token), false) = (&sig.asyncness, tokio) {
            errors.push(syn::Error::new(
                token.span,
                "an `async` `#[netns_test]` runs on tokio: enable the `tokio` feature of \
                 `netns-test-runtime` in Cargo.toml: \
                 `netns-test-runtime = { version = \"0.1\", features = [\"tokio\"] }`",
            ));
        }
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
        let wrong_order = function.attrs.iter().find_map(|attr| {
            PARAMETRISERS
                .iter()
                .find(|(path, _)| is_path(attr.path(), path))
                .map(|(_, name)| (attr, name))
        });
        let param = match wrong_order {
            Some((attr, name)) => {
                errors.push(syn::Error::new_spanned(
                    attr,
                    format!("`#[netns_test]` must come below `#[{name}]`: write `#[{name}]` and its cases first, then `#[netns_test]`, so that each case runs once, in a namespace of its own"),
                ));
                Param::None
            }
            None => parse_param(&sig.inputs).unwrap_or_else(|error| {
                errors.push(error);
                Param::None
            }),
        };
        match (&args.network, param) {
            (Some(_), Param::Network) | (None, Param::None | Param::ByRef | Param::ByValue) => {}
            (Some((_, span)), _) => errors.push(syn::Error::new(
                *span,
                "a test with `network = ...` takes the network it builds: write `fn name(net: &Network)`",
            )),
            (None, Param::Network) => errors.push(syn::Error::new_spanned(
                &sig.inputs,
                "a test takes a `&Network` built from a declaration it names: write `#[netns_test(network = my_network)]`, where `fn my_network() -> NetworkBuilder`",
            )),
        }
        let returns_result = match &sig.output {
            ReturnType::Type(_, ty) if !is_unit(ty) => Some(ty.span()),
            _ => None,
        };
        let test = TestFn {
            param,
            registered: if function.attrs.iter().any(is_test_attribute) {
                Registered::ByTestBelow
            } else if made_by_test_case(&function) {
                Registered::ByTestCase
            } else {
                Registered::Here
            },
            should_panic: should_panic(&function.attrs),
            returns_result,
            function,
        };
        errors.finish(test)
    }
}

/// The attributes that make one test per case of a parametrised function,
/// with the name the error shows: they must come above `#[netns_test]`.
const PARAMETRISERS: &[(&[&str], &str)] = &[
    (&["test_case"], "test_case(..)"),
    (&["test_case", "test_case"], "test_case(..)"),
    (&["test_case", "case"], "test_case(..)"),
    (&["test_matrix"], "test_matrix(..)"),
    (&["test_case", "test_matrix"], "test_matrix(..)"),
    (&["rstest"], "rstest"),
    (&["rstest", "rstest"], "rstest"),
];

/// Whether test-case 3 wrote this function as one case of a sync test, with
/// its `#[::core::prelude::v1::test]` already above `#[netns_test]`. All three
/// marks must be there: its name (`test_case_<n>_...`), the lint allowance it
/// puts on every case, and no `async` (for which it writes no `#[test]`).
/// `tests/tests/composition.rs` lists the cases of each kind, so a release of
/// test-case that writes them differently fails CI, not users.
fn made_by_test_case(function: &ItemFn) -> bool {
    let allows_bool_assert = |attr: &Attribute| {
        attr.path().is_ident("allow")
            && attr
                .parse_args_with(Punctuated::<syn::Path, Token![,]>::parse_terminated)
                .is_ok_and(|lints| {
                    lints
                        .iter()
                        .any(|lint| is_path(lint, &["clippy", "bool_assert_comparison"]))
                })
    };
    function.sig.asyncness.is_none()
        && function.sig.ident.to_string().starts_with("test_case_")
        && function.attrs.iter().any(allows_bool_assert)
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

/// `#[test]`, or libtest's attribute through a prelude path:
/// `[::]core::prelude::<edition>::test` or `[::]std::prelude::<edition>::test`.
fn is_test_attribute(attr: &Attribute) -> bool {
    let Meta::Path(path) = &attr.meta else {
        return false;
    };
    if path
        .segments
        .iter()
        .any(|segment| !segment.arguments.is_none())
    {
        return false;
    }
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [test] => path.leading_colon.is_none() && test == "test",
        [root, prelude, _, test] => {
            (root == "core" || root == "std") && prelude == "prelude" && test == "test"
        }
        _ => false,
    }
}

fn parse_param(inputs: &Punctuated<FnArg, Token![,]>) -> syn::Result<Param> {
    let mut params = inputs.iter();
    let Some(first) = params.next() else {
        return Ok(Param::None);
    };
    let supported = "a test may take one parameter: the handle to its namespace, `&NetNs` or `NetNs`, or with `network = ...`, `&Network`";
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
            if reference.mutability.is_none() && is_named(&reference.elem, "NetNs") =>
        {
            Ok(Param::ByRef)
        }
        Type::Reference(reference)
            if reference.mutability.is_none() && is_named(&reference.elem, "Network") =>
        {
            Ok(Param::Network)
        }
        ty if is_named(ty, "NetNs") => Ok(Param::ByValue),
        ty => Err(syn::Error::new_spanned(
            ty,
            format!("unsupported parameter type; {supported}"),
        )),
    }
}

/// Whether `ty` is a path whose last segment is `name`, with no generics.
fn is_named(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|segment| segment.ident == name && segment.arguments.is_empty())
        }
        Type::Paren(inner) => is_named(&inner.elem, name),
        Type::Group(inner) => is_named(&inner.elem, name),
        _ => false,
    }
}

/// What the attributes say about panicking; the first that applies wins, as
/// in rustc.
///
/// The runtime needs it: when the namespace cannot be made, a `should_panic`
/// test must not be failed by a panic, which libtest would count as a pass.
fn should_panic(attrs: &[Attribute]) -> ShouldPanic {
    let mut found = ShouldPanic::No;
    for attr in attrs.iter().rev() {
        if let Some(should_panic) = should_panic_meta(&attr.meta) {
            found = should_panic;
        } else if attr.path().is_ident("cfg_attr") {
            let Ok(list) = attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                continue;
            };
            let mut items = list.iter();
            let Some(predicate) = items.next() else {
                continue;
            };
            if let Some(then) = items.find_map(should_panic_meta) {
                found = ShouldPanic::If {
                    predicate: predicate.to_token_stream(),
                    then: Box::new(then),
                    otherwise: Box::new(found),
                };
            }
        }
    }
    found
}

fn should_panic_meta(meta: &Meta) -> Option<ShouldPanic> {
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
    Some(expected.map_or(ShouldPanic::Yes, ShouldPanic::Expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(text: &str) -> Attribute {
        let item: ItemFn = syn::parse_str(&format!("{text} fn t() {{}}")).expect("an item");
        item.attrs.into_iter().next().expect("an attribute")
    }

    #[test]
    fn test_attributes_are_recognised_exactly() {
        for yes in [
            "#[test]",
            "#[core::prelude::v1::test]",
            "#[::core::prelude::v1::test]",
            "#[std::prelude::rust_2024::test]",
        ] {
            assert!(is_test_attribute(&attr(yes)), "{yes}");
        }
        for no in [
            "#[tokio::test]",
            "#[::test]",
            "#[std::test]",
            "#[core::other::v1::test]",
            "#[test(arg)]",
            "#[test_case(1)]",
        ] {
            assert!(!is_test_attribute(&attr(no)), "{no}");
        }
    }
}
