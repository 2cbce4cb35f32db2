//! The wasmtime configuration shared by the pool (which compiles) and its
//! workers (which load what it compiled): both must build identical engines.

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::channel::EngineSettings;
use crate::error::{Error, ErrorKind};

/// Instances a worker keeps at once: the one in use, and a fresh one being made.
const INSTANCES_PER_WORKER: u32 = 2;
/// Core instances, memories and tables one component may hold. A Rust guest
/// built for wasm32-wasip2 uses a handful of core instances (the main module
/// and its shims), one memory and a few tables.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 16;

/// Where the engine is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// In the pool's own process: compiles, never instantiates.
    Compile,
    /// In a worker process: loads the artifact and instantiates it.
    Run,
}

/// Builds the engine for `settings`.
pub(crate) fn engine(settings: &EngineSettings, role: Role) -> Result<Engine, Error> {
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_component_model(true);
    config.epoch_interruption(settings.epochs);
    config.consume_fuel(settings.fuel);
    if role == Role::Run {
        // Size the pooling allocator for one worker's needs instead of its
        // default, which reserves terabytes of address space.
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(INSTANCES_PER_WORKER)
            .total_core_instances(INSTANCES_PER_WORKER * CORE_INSTANCES_PER_COMPONENT)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(INSTANCES_PER_WORKER * MEMORIES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_tables(INSTANCES_PER_WORKER * TABLES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_stacks(INSTANCES_PER_WORKER)
            // The limiter refuses growth past the limit first, as a clean
            // memory-limit error; this is only the backstop.
            .max_memory_size(settings.max_memory.saturating_add(1 << 16) as usize);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        // A worker never compiles; one thread is all it has to spare.
        config.parallel_compilation(false);
    }
    Engine::new(&config).map_err(|err| {
        Error::new(
            ErrorKind::Config,
            format!("cannot configure the wasm engine: {err:#}"),
        )
    })
}
