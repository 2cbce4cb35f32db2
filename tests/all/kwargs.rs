//! Keyword arguments and defaults, through real worker processes running the
//! fixtures' `greet(name, greeting = "Hello", times = 1)` and
//! `scale(<point>, in = 1)`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::common::{DEADLINE, deadline, outcome, pool};
use serde::Serialize;
use serde_json::json;
use wasmpool::{Callbacks, ErrorKind, ParamInfo};

fn kw<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_module_declares_its_parameters_and_defaults() {
    let _deadline = deadline("the pool's start", DEADLINE);
    let pool = pool(1);
    let greet = pool.tasks().iter().find(|t| t.name == "greet").unwrap();
    let named: Vec<Option<&str>> = greet.params.iter().map(|p| p.name.as_deref()).collect();
    assert_eq!(named, [Some("name"), Some("greeting"), Some("times")]);
    let defaults: Vec<Option<rmpv::Value>> = greet
        .params
        .iter()
        .map(|p: &ParamInfo| {
            p.default
                .as_ref()
                .map(|d| rmp_serde::from_slice(d).unwrap())
        })
        .collect();
    assert_eq!(
        defaults,
        [
            None,
            Some(rmpv::Value::from("Hello")),
            Some(rmpv::Value::from(1))
        ]
    );
    let scale = pool.tasks().iter().find(|t| t.name == "scale").unwrap();
    let named: Vec<Option<&str>> = scale.params.iter().map(|p| p.name.as_deref()).collect();
    assert_eq!(named, [None, Some("in")], "a pattern is positional-only");
    assert_eq!(scale.arity(), 2);
}

#[test]
fn keywords_positions_and_defaults_bind_as_in_python() {
    let _deadline = deadline("four greet calls", DEADLINE);
    let pool = pool(2);
    let s: String = pool.apply_kw("greet", (), kw([("name", "Ada")])).unwrap();
    assert_eq!(s, "Hello, Ada!", "keywords only, defaults used");
    let s: String = pool
        .apply_kw("greet", ("Ada",), kw([("greeting", "Hi")]))
        .unwrap();
    assert_eq!(s, "Hi, Ada!", "mixed, one default overridden");
    #[derive(Serialize)]
    struct Named {
        times: u32,
        name: &'static str,
    }
    let s: String = pool
        .apply_kw(
            "greet",
            (),
            Named {
                times: 2,
                name: "Bo",
            },
        )
        .unwrap();
    assert_eq!(s, "Hello, Bo! Hello, Bo!", "a struct's fields are keywords");
    let s: String = pool
        .apply_kw("greet", (), json!({"name": "Cy", "greeting": "Yo"}))
        .unwrap();
    assert_eq!(s, "Yo, Cy!", "a JSON object's entries are keywords");
    let s: String = pool.apply("greet", ("Di", "Hey", 1)).unwrap();
    assert_eq!(s, "Hey, Di!", "all positional, as before");
    let p: (i64, i64) = pool
        .apply_kw("scale", ((2, 3),), BTreeMap::from([("in", 10)]))
        .unwrap();
    assert_eq!(p, (20, 30));
    let p: (i64, i64) = pool.apply_kw("scale", ((2, 3),), ()).unwrap();
    assert_eq!(p, (2, 3), "no keywords at all");
}

#[test]
fn a_call_that_does_not_bind_fails_naming_the_problem() {
    let _deadline = deadline("greet calls that do not bind", DEADLINE);
    let pool = pool(1);
    let cases: [(&str, Result<String, wasmpool::Error>); 5] = [
        (
            "unexpected keyword argument `colour`; the task's parameters are: `name`, \
             `greeting`, `times`",
            pool.apply_kw("greet", (), kw([("name", "A"), ("colour", "red")])),
        ),
        (
            "`name` was given both by position and by keyword",
            pool.apply_kw("greet", ("A",), kw([("name", "B")])),
        ),
        (
            "missing required argument: `name`",
            pool.apply_kw("greet", (), kw([("greeting", "Hi")])),
        ),
        (
            "too many positional arguments: the task takes 3, but 4 were given",
            pool.apply_kw("greet", ("A", "Hi", 1, 2), ()),
        ),
        (
            "missing required argument: #1 (positional-only)",
            pool.apply_kw("scale", (), BTreeMap::from([("in", 2)])),
        ),
    ];
    for (message, result) in cases {
        let err = result.expect_err(message);
        assert_eq!(err.kind(), ErrorKind::BadArguments, "{err}");
        assert!(err.message().contains(message), "{err}");
        assert!(err.message().contains("task `"), "names the task: {err}");
    }
    // The pool goes on.
    let s: String = pool.apply_kw("greet", (), kw([("name", "Ed")])).unwrap();
    assert_eq!(s, "Hello, Ed!");
}

#[test]
fn apply_async_kw_calls_back_once() {
    let _deadline = deadline("greet through apply_async_kw", DEADLINE);
    let pool = pool(1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (ok_seen, err_seen) = (seen.clone(), errors.clone());
    let ok = pool
        .apply_async_kw_with(
            "greet",
            ("Fay",),
            kw([("greeting", "Hi")]),
            Callbacks::new().callback(move |s: &String| ok_seen.lock().unwrap().push(s.clone())),
        )
        .unwrap();
    let bad = pool
        .apply_async_kw_with::<String, _, _>(
            "greet",
            (),
            kw([("nom", "Fay")]),
            Callbacks::new().error_callback(move |e| err_seen.lock().unwrap().push(e.kind())),
        )
        .unwrap();
    assert_eq!(outcome(&ok, "the good call").unwrap(), "Hi, Fay!");
    let err = outcome(&bad, "the bad call").unwrap_err();
    assert!(err.message().contains("`nom`"), "{err}");
    pool.close();
    pool.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["Hi, Fay!"]);
    assert_eq!(*errors.lock().unwrap(), [ErrorKind::BadArguments]);
}

#[test]
fn starmap_kw_fails_only_the_items_that_do_not_bind() {
    let _deadline = deadline("starmap_kw over six calls", DEADLINE);
    let pool = pool(2);
    let good = vec![
        (vec!["A"], kw([])),
        (vec![], kw([("name", "B"), ("greeting", "Hi")])),
        (vec!["D", "Yo"], kw([])),
        (vec!["F"], kw([("greeting", "Hey")])),
    ];
    let out: Vec<String> = pool.starmap_kw("greet", good.clone(), 2).unwrap();
    assert_eq!(out, ["Hello, A!", "Hi, B!", "Yo, D!", "Hey, F!"]);
    let mut calls = good;
    calls.insert(2, (vec![], kw([("greeting", "Hi")])));
    calls.insert(4, (vec!["E"], kw([("name", "E")])));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let result = pool
        .starmap_async_kw_with::<String, _, _, _>(
            "greet",
            calls.clone(),
            2,
            Callbacks::new().error_callback(move |e| {
                seen.lock().unwrap().push((e.task_index(), e.kind()));
            }),
        )
        .unwrap();
    let err = outcome(&result, "starmap_async_kw").unwrap_err();
    assert_eq!(
        err.task_index(),
        Some(2),
        "the first failure, by index: {err}"
    );
    let first = pool
        .starmap_async_kw::<String, _, _, _>("greet", calls, None)
        .unwrap();
    assert_eq!(
        outcome(&first, "starmap_async_kw")
            .unwrap_err()
            .task_index(),
        Some(2)
    );
    pool.close();
    pool.join().unwrap();
    let mut errors = errors.lock().unwrap().clone();
    errors.sort_by_key(|(index, _)| *index);
    assert_eq!(
        errors,
        [
            (Some(2), ErrorKind::BadArguments),
            (Some(4), ErrorKind::BadArguments)
        ],
        "exactly the two calls that do not bind fail"
    );
}

#[test]
fn a_stream_of_calls_with_keywords_binds_each() {
    let _deadline = deadline("istarmap_kw_stream over three calls", DEADLINE);
    let pool = pool(2);
    let (tx, rx) = wasmpool::crossbeam_channel::unbounded();
    tx.send(((), kw([("name", "G")]))).unwrap();
    tx.send(((), kw([("name", "H"), ("times", "x")]))).unwrap();
    tx.send(((), kw([("name", "I"), ("greeting", "Hi")])))
        .unwrap();
    drop(tx);
    let results: Vec<Result<String, wasmpool::Error>> = pool
        .istarmap_kw_stream("greet", rx, None, true)
        .unwrap()
        .collect();
    assert_eq!(results[0].as_ref().unwrap(), "Hello, G!");
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadArguments, "{err}");
    assert!(err.message().contains("greet"), "{err}");
    assert_eq!(results[2].as_ref().unwrap(), "Hi, I!");
}
