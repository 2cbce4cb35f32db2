//! Micro-benchmarks of the pieces: the IPC frame codec, one guest call,
//! instantiation, starting a worker process, and what authenticating a
//! NATS report costs: tagged with the key its agent shares with the host,
//! as reports are, or signed, as chunks are.
//!
//! Run: `cargo bench --bench parts --features internals`.

// criterion_group! defines an undocumented function.
#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use wasmpool::Pool;
use wasmpool::internals::{
    Authentication, Guest, answer_frame, batch_frame, decode_frame, open_report, report,
};
use wasmpool_artifacts::SEEDS;

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for tasks in [1usize, 1000] {
        group.throughput(Throughput::Elements(tasks as u64));
        group.bench_function(format!("encode batch of {tasks}"), |b| {
            b.iter(|| batch_frame(tasks))
        });
        let frame = answer_frame(tasks);
        group.bench_function(format!("decode answer of {tasks}"), |b| {
            b.iter(|| assert_eq!(decode_frame(&frame), tasks))
        });
    }
    group.finish();
}

fn guest(c: &mut Criterion) {
    let cache = std::env::temp_dir().join("wasmpool-parts-cache");
    let mut guest = Guest::load(SEEDS.as_ref(), &cache).expect("the module loads");
    let mut group = c.benchmark_group("guest");
    for tasks in [1u32, 1000] {
        let mut args = Vec::new();
        let mut ends = Vec::new();
        for i in 0..tasks {
            args.extend(rmp_serde_encode(i64::from(i)));
            ends.push(args.len() as u32);
        }
        group.throughput(Throughput::Elements(u64::from(tasks)));
        group.bench_function(format!("call with {tasks} square tasks"), |b| {
            b.iter(|| assert_eq!(guest.run("square", &args, &ends), tasks as usize))
        });
    }
    group.bench_function("instantiate", |b| {
        b.iter(|| guest.renew().expect("instantiates"))
    });
    group.finish();
}

/// `[value]`, the MessagePack argument array of a one-argument task.
fn rmp_serde_encode(value: i64) -> Vec<u8> {
    let mut out = vec![0x91];
    serde::Serialize::serialize(&value, &mut rmp_serde::Serializer::new(&mut out))
        .expect("encodes");
    out
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("worker");
    group.sample_size(20);
    group.bench_function("start a one-worker pool and stop it", |b| {
        b.iter_batched(
            || (),
            |()| {
                let pool = Pool::builder()
                    .module_file(SEEDS)
                    .processes(1)
                    .build()
                    .expect("the pool starts");
                drop(pool);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn signatures(c: &mut Criterion) {
    let key = wasmpool::SigningKey::generate();
    let job = "bench";
    let result = rmp_serde_encode(42);
    let mut group = c.benchmark_group("nats report");
    for (how, said) in [
        (Authentication::None, "encoded"),
        (Authentication::Signature, "signed"),
        (Authentication::Tag, "tagged"),
    ] {
        group.bench_function(format!("make, {said}"), |b| {
            b.iter(|| report(&key, job, &result, how))
        });
        let made = report(&key, job, &result, how);
        group.bench_function(format!("take, {said}"), |b| {
            b.iter(|| assert!(open_report(job, &made, how)))
        });
    }
    group.finish();
}

criterion_group!(benches, codec, guest, spawn, signatures);

fn main() {
    wasmpool::init();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
