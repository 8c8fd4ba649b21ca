//! A test that returns `Result` has its `Err` noted before its locals are
//! dropped, so that its failure report still shows the sockets they held.
//!
//! `expr?` becomes `__private::noted(expr)?`, `return expr` becomes
//! `return __private::noted(expr)`, and the body's tail expression is
//! wrapped the same way: `noted` hands its value back unchanged, and only
//! looks at whether it is an `Err`. Closures, async blocks and nested items
//! return to someone else, and are left as they are; so are `?` and
//! `return` inside macro calls, which are not parsed.

use proc_macro2::Ident;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprAsync, ExprClosure, Item, Stmt, parse_quote_spanned};

/// Rewrites the body `block` of a test function that returns `Result`.
pub(crate) fn note_errors(block: &mut Block, private: &Ident) {
    let mut noter = Noter { private };
    noter.visit_block_mut(block);
    if let Some(Stmt::Expr(tail, None)) = block.stmts.last_mut() {
        noter.wrap(tail);
    }
}

struct Noter<'a> {
    private: &'a Ident,
}

impl Noter<'_> {
    fn wrap(&self, expr: &mut Expr) {
        let private = self.private;
        let inner = expr.clone();
        *expr = parse_quote_spanned! {inner.span()=> #private::noted(#inner) };
    }
}

impl VisitMut for Noter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        visit_mut::visit_expr_mut(self, expr);
        match expr {
            Expr::Try(tried) => self.wrap(&mut tried.expr),
            Expr::Return(returned) => {
                if let Some(value) = &mut returned.expr {
                    self.wrap(value);
                }
            }
            _ => {}
        }
    }

    fn visit_expr_closure_mut(&mut self, _: &mut ExprClosure) {}

    fn visit_expr_async_mut(&mut self, _: &mut ExprAsync) {}

    fn visit_item_mut(&mut self, _: &mut Item) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn noted(body: proc_macro2::TokenStream) -> String {
        let mut block: Block = syn::parse2(body).expect("a block");
        note_errors(&mut block, &Ident::new("p", proc_macro2::Span::call_site()));
        quote!(#block).to_string()
    }

    /// `expected`, printed as a parsed block is.
    fn printed(expected: proc_macro2::TokenStream) -> String {
        let block: Block = syn::parse2(expected).expect("a block");
        quote!(#block).to_string()
    }

    #[test]
    fn notes_try_return_and_the_tail_but_not_closures() {
        assert_eq!(
            noted(quote!({
                let x = f()?;
                if x {
                    return Err(e);
                }
                g(|| h()?);
                Ok(())
            })),
            printed(quote!({
                let x = p::noted(f())?;
                if x {
                    return p::noted(Err(e));
                }
                g(|| h()?);
                p::noted(Ok(()))
            }))
        );
        assert_eq!(
            noted(quote!({
                async { f()? };
                fn inner() -> R {
                    g()?
                }
                x?;
            })),
            printed(quote!({
                async { f()? };
                fn inner() -> R {
                    g()?
                }
                p::noted(x)?;
            }))
        );
    }
}
