//! The Pool API, through real worker processes running real guests.

use wasmpool::Pool;
use wasmpool_artifacts::FIXTURES;

fn pool(processes: usize) -> Pool {
    Pool::builder()
        .module_file(FIXTURES)
        .worker_program(env!("CARGO_BIN_EXE_wasmpool"))
        .processes(processes)
        .build()
        .expect("the pool starts")
}

#[test]
fn smoke() {
    let pool = pool(2);
    let v: i64 = pool.apply("square", (7,)).unwrap();
    assert_eq!(v, 49);
    let v: Vec<i64> = pool.map("square", 0..10, None).unwrap();
    assert_eq!(v, (0..10).map(|x| x * x).collect::<Vec<_>>());
}
