//! The `#[task]` attribute of [`wasmpool-guest`](https://docs.rs/wasmpool-guest).
//!
//! Use it through `wasmpool_guest::task`; this crate is an implementation detail.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    FnArg, ItemFn, LitStr, ReturnType, Token, Type, parse::Parse, parse::ParseStream,
    parse_macro_input, spanned::Spanned,
};

/// Options of `#[task(...)]`.
struct TaskArgs {
    /// `name = "..."`: the name the host uses, instead of the function's.
    name: Option<LitStr>,
}

impl Parse for TaskArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut name = None;
        while !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            if key == "name" {
                name = Some(input.parse::<LitStr>()?);
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    "unknown option of #[task]: the only option is `name = \"...\"`",
                ));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(TaskArgs { name })
    }
}

/// Marks a plain function as a task of this module.
///
/// The parameters must implement `serde::de::DeserializeOwned`; they are passed
/// positionally. The return type must implement `serde::Serialize`; a return
/// type named `Result<T, E>` (with `E: Display`) makes `Err` a task error.
/// `#[task(name = "other")]` registers the task under another name.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as TaskArgs);
    let func = parse_macro_input!(item as ItemFn);
    match expand(args, func) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(args: TaskArgs, func: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a #[task] cannot be async",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a #[task] cannot be generic: the host calls it by name with concrete types",
        ));
    }
    let mut types: Vec<&Type> = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Typed(pat) => types.push(&pat.ty),
            FnArg::Receiver(recv) => {
                return Err(syn::Error::new(
                    recv.span(),
                    "a #[task] is a free function, it cannot take self",
                ));
            }
        }
    }
    let ident = &sig.ident;
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let arity = types.len() as u32;
    let bindings: Vec<_> = (0..types.len()).map(|i| format_ident!("arg{i}")).collect();
    let call_fn = format_ident!("__wasmpool_task_{}", ident);
    let finish = if returns_result(&sig.output) {
        quote!(::wasmpool_guest::__private::finish_result)
    } else {
        quote!(::wasmpool_guest::__private::finish_value)
    };
    let sdk = quote!(::wasmpool_guest::__private);
    let span = Span::call_site();
    let expanded = quote::quote_spanned! {span=>
        #func

        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #call_fn(args: &[u8], out: &mut ::std::vec::Vec<u8>) -> #sdk::Outcome {
            let (#(#bindings,)*): (#(#types,)*) = #sdk::decode_args::<(#(#types,)*)>(#name, #arity, args)?;
            #finish(#ident(#(#bindings),*), out)
        }

        #sdk::inventory::submit! {
            #sdk::TaskDef::new(#name, #arity, #call_fn)
        }
    };
    Ok(expanded)
}

/// Whether the declared return type is spelled `Result<..>` (any path ending in
/// `Result`), which makes `Err` a task error rather than a value.
fn returns_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::Path(path) = ty.as_ref() else {
        return false;
    };
    path.path
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "Result")
}
