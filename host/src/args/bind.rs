//! Binding a call's keyword arguments to a task's parameters, as Python binds
//! a call to a signature: the positional arguments, the keyword arguments and
//! the defaults become the one positional MessagePack array the contract runs
//! a task with. Pure: no I/O, no pool.

use rmpv::Value;

use crate::channel::ParamInfo;

/// Why a call's arguments do not bind to a task's parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BindError {
    /// The call did not encode as MessagePack the binding can read.
    #[error("the arguments do not decode: {0}")]
    Malformed(String),
    /// The call is not a pair (positional arguments, keyword arguments).
    #[error("a call with keyword arguments is a pair (positional arguments, keyword arguments)")]
    NotAPair,
    /// The positional arguments are not a sequence.
    #[error("the positional arguments must be a sequence (a tuple), not {0}")]
    NotASequence(&'static str),
    /// The keyword arguments are not a map.
    #[error(
        "the keyword arguments must be a map of names to values (a map, or a struct with \
         named fields), not {0}"
    )]
    NotAMap(&'static str),
    /// A keyword is not a string.
    #[error("a keyword argument's name must be a string, not {0}")]
    KeyNotAString(&'static str),
    /// More positional arguments than parameters.
    #[error("too many positional arguments: the task takes {takes}, but {given} were given")]
    TooMany {
        /// How many parameters the task has.
        takes: usize,
        /// How many positional arguments the call gave.
        given: usize,
    },
    /// A keyword that names no parameter.
    #[error("unexpected keyword argument `{name}`; the task's parameters are: {params}")]
    Unknown {
        /// The keyword.
        name: String,
        /// The task's parameters, listed.
        params: String,
    },
    /// A parameter given by position and by keyword.
    #[error("`{0}` was given both by position and by keyword")]
    Twice(String),
    /// A keyword given twice.
    #[error("keyword argument `{0}` was given twice")]
    Repeated(String),
    /// Required parameters the call left out.
    #[error("missing required argument{}: {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    Missing(Vec<String>),
}

/// Binds `call`, a MessagePack pair `[positional, keywords]` (either may be
/// nil, for none), to `params`, and appends the task's positional argument
/// array to `out`: the positional arguments first, then for each parameter
/// left its keyword argument or else its default.
pub(crate) fn bind(params: &[ParamInfo], call: &[u8], out: &mut Vec<u8>) -> Result<(), BindError> {
    let Value::Array(pair) = decode(call)? else {
        return Err(BindError::NotAPair);
    };
    let [positional, keywords] = <[Value; 2]>::try_from(pair).map_err(|_| BindError::NotAPair)?;
    let positional = match positional {
        Value::Nil => Vec::new(),
        Value::Array(values) => values,
        other => return Err(BindError::NotASequence(kind(&other))),
    };
    let keywords = match keywords {
        Value::Nil => Vec::new(),
        Value::Map(entries) => entries,
        other => return Err(BindError::NotAMap(kind(&other))),
    };
    if positional.len() > params.len() {
        return Err(BindError::TooMany {
            takes: params.len(),
            given: positional.len(),
        });
    }
    let given = positional.len();
    let mut slots: Vec<Option<Value>> = positional.into_iter().map(Some).collect();
    slots.resize(params.len(), None);
    for (key, value) in keywords {
        let name = match key {
            Value::String(name) => name
                .into_str()
                .ok_or(BindError::KeyNotAString("a string of invalid UTF-8"))?,
            other => return Err(BindError::KeyNotAString(kind(&other))),
        };
        let Some(at) = params
            .iter()
            .position(|param| param.name.as_deref() == Some(name.as_str()))
        else {
            return Err(BindError::Unknown {
                name,
                params: list(params),
            });
        };
        if at < given {
            return Err(BindError::Twice(name));
        }
        if slots[at].replace(value).is_some() {
            return Err(BindError::Repeated(name));
        }
    }
    let mut values = Vec::with_capacity(params.len());
    let mut missing = Vec::new();
    for (at, (slot, param)) in slots.into_iter().zip(params).enumerate() {
        match (slot, &param.default) {
            (Some(value), _) => values.push(value),
            (None, Some(default)) => values.push(decode(default)?),
            (None, None) => missing.push(describe(at, param)),
        }
    }
    if !missing.is_empty() {
        return Err(BindError::Missing(missing));
    }
    rmpv::encode::write_value(out, &Value::Array(values))
        .map_err(|err| BindError::Malformed(err.to_string()))
}

/// Checks the parameters a module declares for one task: names not empty
/// and not repeated, each default one MessagePack value of at most
/// `max_payload` bytes.
pub(crate) fn check_params(params: &[ParamInfo], max_payload: usize) -> Result<(), String> {
    for (at, param) in params.iter().enumerate() {
        if let Some(name) = &param.name {
            if name.is_empty() {
                return Err(format!("parameter #{} has an empty name", at + 1));
            }
            if params[..at]
                .iter()
                .any(|other| other.name.as_ref() == Some(name))
            {
                return Err(format!("two parameters are named `{name}`"));
            }
        }
        let Some(default) = &param.default else {
            continue;
        };
        let what = describe(at, param);
        if default.len() > max_payload {
            return Err(format!(
                "the default of {what} takes {} bytes, over the payload limit of {max_payload} bytes",
                default.len()
            ));
        }
        let mut rest = default.as_slice();
        rmpv::decode::read_value(&mut rest)
            .map_err(|err| format!("the default of {what} is not MessagePack: {err}"))?;
        if !rest.is_empty() {
            return Err(format!(
                "the default of {what} is more than one MessagePack value"
            ));
        }
    }
    Ok(())
}

/// A task's parameters, listed for a message.
fn list(params: &[ParamInfo]) -> String {
    let named: Vec<String> = params
        .iter()
        .enumerate()
        .map(|(at, param)| describe(at, param))
        .collect();
    if named.is_empty() {
        "none".to_string()
    } else {
        named.join(", ")
    }
}

/// Parameter `at` of a task, for a message: `name`, or its position if it
/// has no name.
fn describe(at: usize, param: &ParamInfo) -> String {
    match &param.name {
        Some(name) => format!("`{name}`"),
        None => format!("#{} (positional-only)", at + 1),
    }
}

/// One MessagePack value, all of `bytes`.
fn decode(bytes: &[u8]) -> Result<Value, BindError> {
    let mut rest = bytes;
    let value =
        rmpv::decode::read_value(&mut rest).map_err(|err| BindError::Malformed(err.to_string()))?;
    if !rest.is_empty() {
        return Err(BindError::Malformed(
            "trailing bytes after the value".to_string(),
        ));
    }
    Ok(value)
}

/// What kind of value `value` is, for a message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(_) => "a string",
        Value::Binary(_) => "bytes",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an extension value",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;

    /// A parameter named `name`, with `default` (encoded) if it has one.
    fn param(name: &str, default: Option<i64>) -> ParamInfo {
        ParamInfo {
            name: (!name.is_empty()).then(|| name.to_string()),
            default: default.map(|value| rmp_serde::to_vec(&value).unwrap()),
        }
    }

    /// `greet(name, greeting="Hello", times=1)`, with strings as integers.
    fn greet() -> Vec<ParamInfo> {
        vec![
            param("name", None),
            param("greeting", Some(7)),
            param("times", Some(1)),
        ]
    }

    /// Binds positional `args` and keyword `kwargs`, and decodes what the task
    /// would run with.
    fn call(
        params: &[ParamInfo],
        args: impl Serialize,
        kwargs: impl Serialize,
    ) -> Result<Vec<i64>, BindError> {
        let encoded = rmp_serde::encode::to_vec_named(&(args, kwargs)).unwrap();
        let mut out = Vec::new();
        bind(params, &encoded, &mut out)?;
        Ok(rmp_serde::from_slice(&out).unwrap())
    }

    fn kw<const N: usize>(pairs: [(&str, i64); N]) -> BTreeMap<String, i64> {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn keywords_and_defaults_fill_the_parameters_in_order() {
        let params = greet();
        assert_eq!(call(&params, (), kw([("name", 5)])), Ok(vec![5, 7, 1]));
        assert_eq!(call(&params, (5,), kw([("times", 3)])), Ok(vec![5, 7, 3]));
        assert_eq!(
            call(
                &params,
                (),
                kw([("times", 3), ("greeting", 2), ("name", 5)])
            ),
            Ok(vec![5, 2, 3])
        );
        assert_eq!(call(&params, (5, 2, 3), ()), Ok(vec![5, 2, 3]));
        assert_eq!(call(&params, (5,), ()), Ok(vec![5, 7, 1]));
        #[derive(Serialize)]
        struct Named {
            name: i64,
            times: i64,
        }
        assert_eq!(
            call(&params, (), Named { name: 4, times: 9 }),
            Ok(vec![4, 7, 9])
        );
        assert_eq!(call(&[], (), kw([])), Ok(vec![]));
    }

    #[test]
    fn a_bad_call_says_what_is_wrong() {
        let params = greet();
        let unknown = call(&params, (), kw([("name", 1), ("colour", 2)])).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unexpected keyword argument `colour`; the task's parameters are: `name`, \
             `greeting`, `times`"
        );
        assert_eq!(
            call(&params, (1,), kw([("name", 1)])),
            Err(BindError::Twice("name".into()))
        );
        let missing = call(&params, (), kw([("times", 1)])).unwrap_err();
        assert_eq!(missing.to_string(), "missing required argument: `name`");
        assert_eq!(
            call(&params, (1, 2, 3, 4), ()),
            Err(BindError::TooMany { takes: 3, given: 4 })
        );
        assert_eq!(
            call(&params, 5, ()),
            Err(BindError::NotASequence("an integer"))
        );
        assert_eq!(
            call(&params, (), [1, 2]),
            Err(BindError::NotAMap("an array"))
        );
        let mut out = Vec::new();
        assert_eq!(
            bind(&params, &rmp_serde::to_vec(&(1,)).unwrap(), &mut out),
            Err(BindError::NotAPair)
        );
        let int_keys: BTreeMap<i64, i64> = [(1, 1)].into();
        assert_eq!(
            call(&params, (), int_keys),
            Err(BindError::KeyNotAString("an integer"))
        );
        assert!(out.is_empty(), "a failed binding writes nothing");
    }

    #[test]
    fn positional_only_parameters_bind_by_position_only() {
        let params = vec![param("", None), param("b", Some(2))];
        assert_eq!(call(&params, (1,), kw([("b", 3)])), Ok(vec![1, 3]));
        let missing = call(&params, (), kw([("b", 3)])).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "missing required argument: #1 (positional-only)"
        );
        assert!(matches!(
            call(&params, (), kw([("a", 1)])),
            Err(BindError::Unknown { .. })
        ));
    }

    #[test]
    fn declared_parameters_are_checked() {
        assert!(check_params(&greet(), 100).is_ok());
        let twice = [param("a", None), param("a", None)];
        assert!(check_params(&twice, 100).unwrap_err().contains("`a`"));
        let empty = [ParamInfo {
            name: Some(String::new()),
            default: None,
        }];
        assert!(check_params(&empty, 100).is_err());
        let two_values = [ParamInfo {
            name: Some("a".into()),
            default: Some(vec![0x01, 0x02]),
        }];
        assert!(check_params(&two_values, 100).is_err());
        let cut = [ParamInfo {
            name: Some("a".into()),
            default: Some(vec![0x92, 0x01]),
        }];
        assert!(check_params(&cut, 100).is_err());
        assert!(check_params(&greet(), 0).is_err(), "over the payload limit");
    }

    proptest! {
        /// Any split of a full call between positions and keywords binds to
        /// the same arguments, defaults filling what is left out; leaving
        /// out a required parameter fails naming it.
        #[test]
        fn every_split_of_a_call_binds_alike(
            required in 0usize..4,
            optional in 0usize..4,
            values in proptest::collection::vec(any::<i64>(), 8),
            positional in 0usize..8,
            passed in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let n = required + optional;
            let params: Vec<ParamInfo> = (0..n)
                .map(|i| param(&format!("p{i}"), (i >= required).then_some(-(i as i64))))
                .collect();
            let positional = positional.min(n);
            let args: Vec<i64> = values[..positional].to_vec();
            let kwargs: BTreeMap<String, i64> = (positional..n)
                .filter(|&i| passed[i])
                .map(|i| (format!("p{i}"), values[i]))
                .collect();
            let bound = call(&params, &args, &kwargs);
            let missing: Vec<String> = (positional..required)
                .filter(|&i| !passed[i])
                .map(|i| format!("`p{i}`"))
                .collect();
            if missing.is_empty() {
                let expected: Vec<i64> = (0..n)
                    .map(|i| if i < positional || passed[i] { values[i] } else { -(i as i64) })
                    .collect();
                prop_assert_eq!(bound, Ok(expected));
            } else {
                prop_assert_eq!(bound, Err(BindError::Missing(missing)));
            }
        }
    }
}
