//! Seeds 001 and 003, keyword arguments: `apply(func, args, kwds)` and
//! `apply_async(func, args=..., kwds=...)`, and parameters that take their
//! default when a call leaves them out.
//!
//! Run: `cargo run --release --example kwargs`

use std::collections::BTreeMap;

use wasmpool::Callbacks;

fn main() -> anyhow::Result<()> {
    wasmpool::init();
    let pool = wasmpool::Pool::builder()
        .module_file(wasmpool_artifacts::SEEDS)
        .processes(4)
        .build()?;

    // Seed 001: apply_async(action), args=('positional',), kwds={'name': 'keyword'}.
    // Defaults are bound with the keywords: the `_kw` forms, here with none.
    let calls = [
        pool.apply_async_kw::<String, _, _>("action_named", (), ())?,
        pool.apply_async("action_named", ("positional argument",))?,
        pool.apply_async_kw(
            "action_named",
            (),
            BTreeMap::from([("name", "keyword argument")]),
        )?,
    ];
    for call in calls {
        println!("{}", call.get()?);
    }

    // Seed 003: apply(func, (123, 345), {'a': 1, 'b': 2}), then with `b` left to its default.
    let out: String = pool.apply_kw(
        "func_kwds",
        (123, 345),
        BTreeMap::from([("a", 1), ("b", 2)]),
    )?;
    println!("{out}");
    let out: String = pool.apply_kw("func_kwds", (123, 345), BTreeMap::from([("a", 1)]))?;
    println!("{out}");

    // apply_async with kwds and a callback.
    let pending = pool.apply_async_kw_with(
        "func_kwds",
        (1, 2),
        BTreeMap::from([("b", 3)]),
        Callbacks::new().callback(|out: &String| println!("callback: {out}")),
    )?;
    pending.wait();

    // starmap_kw: one (args, kwds) pair per call.
    let pairs = [
        ((5, 6), BTreeMap::from([("a", 7)])),
        ((8, 9), BTreeMap::new()),
    ];
    let out: Vec<String> = pool.starmap_kw("func_kwds", pairs, None)?;
    println!("{out:?}");

    // A keyword the task does not have fails that call, naming its parameters.
    let err = pool
        .apply_kw::<String, _, _>("func_kwds", (1, 2), BTreeMap::from([("c", 3)]))
        .unwrap_err();
    println!("{:?}: {}", err.kind(), err.message());

    pool.close();
    pool.join()?;
    Ok(())
}
