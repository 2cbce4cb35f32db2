//! JSON Lines in, JSON Lines out: input lines become task arguments, results
//! become output records.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

/// What a line of the input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// The task's single argument.
    Single,
    /// An array of the task's positional arguments (`--star`).
    Star,
    /// An object of the task's keyword arguments (`--kwargs`).
    Kwargs,
}

/// One input line, parsed into a task's positional arguments or keyword
/// arguments; a line that cannot be a task's arguments carries why, and fails
/// to serialise with that message, so the pool reports it as that task's
/// error without running anything.
pub(crate) enum Line {
    Args(Vec<Value>),
    Kwargs(Map<String, Value>),
    Malformed(String),
}

impl Line {
    /// Parses line `number` (1-based, for messages), which holds `form`.
    pub(crate) fn parse(bytes: &[u8], number: u64, form: Form) -> Line {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        match (serde_json::from_slice::<Value>(bytes), form) {
            (Err(err), _) => {
                Line::Malformed(format!("input line {number} is not valid JSON: {err}"))
            }
            (Ok(value), Form::Single) => Line::Args(vec![value]),
            (Ok(Value::Array(args)), Form::Star) => Line::Args(args),
            (Ok(_), Form::Star) => Line::Malformed(format!(
                "input line {number}: with --star, a line must be a JSON array of the \
                 task's positional arguments"
            )),
            (Ok(Value::Object(kwargs)), Form::Kwargs) => Line::Kwargs(kwargs),
            (Ok(_), Form::Kwargs) => Line::Malformed(format!(
                "input line {number}: with --kwargs, a line must be a JSON object of the \
                 task's keyword arguments"
            )),
        }
    }
}

impl Serialize for Line {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Line::Args(value) => value.serialize(serializer),
            Line::Kwargs(kwargs) => kwargs.serialize(serializer),
            Line::Malformed(message) => Err(serde::ser::Error::custom(message)),
        }
    }
}

/// The output record of task `index`.
pub(crate) fn record(index: u64, outcome: Result<rmpv::Value, wasmpool::Error>) -> Value {
    match outcome {
        Ok(value) => json!({ "index": index, "ok": to_json(value) }),
        Err(err) => json!({
            "index": index,
            "error": { "kind": err.kind().as_str(), "message": err.message() },
        }),
    }
}

/// MessagePack to JSON: byte strings become arrays of numbers, map keys that
/// are not strings become their JSON text, NaN and infinities become null.
pub(crate) fn to_json(value: rmpv::Value) -> Value {
    match value {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => Value::Bool(b),
        rmpv::Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(s)) => Value::from(s),
            (None, None) => Value::Null,
        },
        rmpv::Value::F32(f) => float(f64::from(f)),
        rmpv::Value::F64(f) => float(f),
        rmpv::Value::String(s) => Value::String(match s.into_str() {
            Some(s) => s,
            None => "<invalid UTF-8>".to_string(),
        }),
        rmpv::Value::Binary(bytes) => Value::Array(bytes.into_iter().map(Value::from).collect()),
        rmpv::Value::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        rmpv::Value::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match key {
                    rmpv::Value::String(s) if s.is_str() => s.into_str().unwrap_or_default(),
                    other => to_json(other).to_string(),
                };
                map.insert(key, to_json(value));
            }
            Value::Object(map)
        }
        rmpv::Value::Ext(kind, data) => json!({ "ext": kind, "data": data }),
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_say_why_not() {
        assert!(matches!(Line::parse(b"[1, 2]\r", 1, Form::Star), Line::Args(a) if a.len() == 2));
        assert!(matches!(Line::parse(b"[1, 2]", 1, Form::Single), Line::Args(a) if a.len() == 1));
        assert!(
            matches!(Line::parse(b"{\"a\": 1}", 1, Form::Single), Line::Args(a) if a[0].is_object())
        );
        assert!(
            matches!(Line::parse(b"{\"a\": 1}", 1, Form::Kwargs), Line::Kwargs(k) if k["a"] == 1)
        );
        let Line::Malformed(why) = Line::parse(b"{oops", 7, Form::Kwargs) else {
            panic!("accepted malformed JSON");
        };
        assert!(why.starts_with("input line 7 is not valid JSON"), "{why}");
        let Line::Malformed(why) = Line::parse(b"3", 2, Form::Star) else {
            panic!("accepted a non-array with --star");
        };
        assert!(why.contains("--star"), "{why}");
        let Line::Malformed(why) = Line::parse(b"[1]", 3, Form::Kwargs) else {
            panic!("accepted a non-object with --kwargs");
        };
        assert!(why.starts_with("input line 3: with --kwargs"), "{why}");
    }

    #[test]
    fn messagepack_values_become_json() {
        let value = rmpv::Value::Map(vec![
            (rmpv::Value::from("n"), rmpv::Value::from(-3)),
            (rmpv::Value::from(7), rmpv::Value::Binary(vec![1, 2])),
            (rmpv::Value::from("f"), rmpv::Value::F64(f64::NAN)),
        ]);
        assert_eq!(to_json(value), json!({"n": -3, "7": [1, 2], "f": null}));
    }
}
