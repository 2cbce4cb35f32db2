//! The `#[task]` attribute of [`wasmpool-guest`](https://docs.rs/wasmpool-guest).
//!
//! Use it through `wasmpool_guest::task`; this crate is an implementation detail.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{
    Expr, FnArg, ItemFn, LitStr, Meta, Pat, PatType, ReturnType, Token, Type, parse::Parse,
    parse::ParseStream, parse_macro_input, spanned::Spanned,
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
/// The parameters must implement `serde::de::DeserializeOwned`. A caller
/// passes them by position, or by keyword under the parameter's name (`r#`
/// left out); a parameter bound by a pattern other than a plain name, such
/// as `(a, b): (i64, i64)` or `_: u8`, is positional-only. `#[default(expr)]`
/// (or `#[default = expr]`) on a parameter gives it a default value, used
/// when a call leaves it out; as in Python, parameters with a default come
/// after those without. The return type must implement `serde::Serialize`;
/// a return type named `Result<T, E>` (with `E: Display`) makes `Err` a task
/// error. `#[task(name = "other")]` registers the task under another name.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as TaskArgs);
    let func = parse_macro_input!(item as ItemFn);
    match expand(args, func) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(args: TaskArgs, mut func: ItemFn) -> syn::Result<TokenStream2> {
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
    let mut types: Vec<Type> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    for input in &mut func.sig.inputs {
        match input {
            FnArg::Typed(pat) => {
                let param = Param::take(pat)?;
                if param.default.is_none()
                    && let Some(before) = params.iter().find(|p| p.default.is_some())
                {
                    return Err(syn::Error::new(
                        pat.span(),
                        format!(
                            "this parameter has no #[default] but follows {}, which has one: \
                             as in Python, parameters with a default come last",
                            before.label()
                        ),
                    ));
                }
                types.push((*pat.ty).clone());
                params.push(param);
            }
            FnArg::Receiver(recv) => {
                return Err(syn::Error::new(
                    recv.span(),
                    "a #[task] is a free function, it cannot take self",
                ));
            }
        }
    }
    let sig = &func.sig;
    let ident = &sig.ident;
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let arity = types.len();
    let bindings: Vec<_> = (0..types.len()).map(|i| format_ident!("arg{i}")).collect();
    let call_fn = format_ident!("__wasmpool_task_{}", ident);
    let finish = if returns_result(&sig.output) {
        quote!(::wasmpool_guest::__private::finish_result)
    } else {
        quote!(::wasmpool_guest::__private::finish_value)
    };
    let sdk = quote!(::wasmpool_guest::__private);
    let mut defaults = Vec::new();
    let mut param_defs = Vec::new();
    for (i, (param, ty)) in params.iter().zip(&types).enumerate() {
        let which = match &param.name {
            Some(name) => format!("`{name}`"),
            None => format!("#{}", i + 1),
        };
        let param_name = match &param.name {
            Some(name) => quote!(::std::option::Option::Some(#name)),
            None => quote!(::std::option::Option::None),
        };
        let default = match &param.default {
            Some(expr) => {
                let default_fn = format_ident!("__wasmpool_default_{}_{}", ident, i);
                defaults.push(quote::quote_spanned! {expr.span()=>
                    #[doc(hidden)]
                    #[allow(non_snake_case)]
                    fn #default_fn() -> ::std::vec::Vec<u8> {
                        #sdk::encode_default::<#ty>(#name, #which, #expr)
                    }
                });
                quote!(::std::option::Option::Some(#default_fn as fn() -> ::std::vec::Vec<u8>))
            }
            None => quote!(::std::option::Option::None),
        };
        param_defs.push(quote!(#sdk::Param::new(#param_name, #default)));
    }
    let span = Span::call_site();
    let expanded = quote::quote_spanned! {span=>
        #func

        #(#defaults)*

        #[doc(hidden)]
        #[allow(non_snake_case)]
        fn #call_fn(args: &[u8], out: &mut ::std::vec::Vec<u8>) -> #sdk::Outcome {
            let (#(#bindings,)*): (#(#types,)*) = #sdk::decode_args::<(#(#types,)*)>(#name, #arity, args)?;
            #finish(#ident(#(#bindings),*), out)
        }

        #sdk::inventory::submit! {
            #sdk::TaskDef::new(#name, &[#(#param_defs),*], #call_fn)
        }
    };
    Ok(expanded)
}

/// One parameter of a task, as `#[task]` reads it.
struct Param {
    /// Its name, if it is bound by a plain name (else positional-only).
    name: Option<String>,
    /// The expression of its `#[default]`.
    default: Option<Expr>,
}

impl Param {
    /// Reads the parameter `pat`, and takes its `#[default]` attribute off.
    fn take(pat: &mut PatType) -> syn::Result<Self> {
        let name = match pat.pat.as_ref() {
            Pat::Ident(binding) if binding.subpat.is_none() => {
                Some(binding.ident.unraw().to_string())
            }
            _ => None,
        };
        let mut default = None;
        let mut kept = Vec::new();
        for attr in std::mem::take(&mut pat.attrs) {
            if !attr.path().is_ident("default") {
                kept.push(attr);
                continue;
            }
            if default.is_some() {
                return Err(syn::Error::new(
                    attr.span(),
                    "a parameter has at most one #[default]",
                ));
            }
            default = Some(match &attr.meta {
                Meta::List(list) => list.parse_args::<Expr>()?,
                Meta::NameValue(pair) => pair.value.clone(),
                Meta::Path(path) => {
                    return Err(syn::Error::new(
                        path.span(),
                        "#[default] needs a value: #[default(expr)] or #[default = expr]",
                    ));
                }
            });
        }
        pat.attrs = kept;
        Ok(Param { name, default })
    }

    /// How messages name it.
    fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("`{name}`"),
            None => "a positional-only parameter".to_string(),
        }
    }
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
