//! The wasmtime configuration shared by the pool (which compiles) and its
//! workers (which load what it compiled): both must build identical engines.

use std::num::NonZeroUsize;
use std::sync::Arc;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use crate::cache::FunctionCache;
use crate::channel::{EngineSettings, bounds};
use crate::error::{Error, ErrorKind};

/// Instances a worker keeps at once: the one in use, and a fresh one being made.
const INSTANCES_PER_WORKER: u32 = 2;

// What one component may hold. The pooling allocator refuses to load a
// component over any of these (the worker then fails to start), so they are
// sized for the largest guests with room to spare. Measured:
//
// | guest                                   | core instances | memories | tables | table elements | instance metadata |
// |-----------------------------------------|----------------|----------|--------|----------------|-------------------|
// | Rust, wasm32-wasip2 (tests' fixtures)   | 3              | 1        | 2      | 241            | 15 KB             |
// | Python, componentize-py 0.25 (CPython)  | 14             | 1        | 2      | 5,676          | 400 KB            |
//
// Every limit below is at least four times the Python guest's (which also
// needs 12.3 MiB of linear memory to start, under any memory limit). Only the
// memories and tables reserve address space up front, per worker:
// `INSTANCES_PER_WORKER` times the per-component counts.

/// Core instances one component may hold: a Rust guest is its main module
/// and two shims; a Python guest also links CPython's shared libraries.
const CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Linear memories one component may hold. Each slot reserves 4 GiB of
/// address space plus guards (no memory), so a worker reserves 8 of them,
/// about 32 GiB of the 128 TiB a process has.
const MEMORIES_PER_COMPONENT: u32 = 4;
/// Tables one component may hold.
const TABLES_PER_COMPONENT: u32 = 16;
/// The most elements a table may have, at start or grown to. Each table slot
/// maps this many pointers (touched only as used): 32 slots of 512 KiB.
const TABLE_ELEMENTS: usize = 64 << 10;
/// The most bytes of runtime metadata of one component instance, its core
/// instances' included, and of one core instance. Limits only: the metadata
/// is allocated as needed.
const COMPONENT_INSTANCE_SIZE: usize = 8 << 20;
const CORE_INSTANCE_SIZE: usize = 4 << 20;

/// The most bytes of an instance's linear memory, and of its tables, that
/// stay resident when the instance goes: the pages a task dirtied are set
/// back to the module's image in place (found with Linux's `PAGEMAP_SCAN`
/// where the kernel has it) instead of being dropped and faulted in again by
/// the next instance. 16 MiB holds what a Python guest's interpreter touches
/// to start (12.3 MiB); a fresh Python instance per task then takes 37%
/// fewer page faults and 20% less time (measured on 3,000 tasks). A worker
/// keeps at most this much per memory slot of memory no instance uses.
const KEEP_RESIDENT: usize = 16 << 20;
const TABLE_KEEP_RESIDENT: usize = 1 << 20;

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
    build(&config(settings, role))
}

/// Builds the pool's engine for `settings`, which takes the functions it
/// compiled before, in this or another module, from `functions` (and adds
/// those it compiles).
pub(crate) fn compiler(
    settings: &EngineSettings,
    functions: Arc<FunctionCache>,
) -> Result<Engine, Error> {
    let mut config = config(settings, Role::Compile);
    config
        .enable_incremental_compilation(functions)
        .map_err(config_error)?;
    build(&config)
}

/// The configuration for `settings`, where `role` says.
fn config(settings: &EngineSettings, role: Role) -> Config {
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_component_model(true);
    config.epoch_interruption(settings.epochs);
    config.consume_fuel(settings.fuel);
    // A trap's backtrace crosses the channel: no more frames than it takes,
    // and one to tell that it was cut.
    config.wasm_backtrace_max_frames(NonZeroUsize::new(bounds::BACKTRACE_FRAMES + 1));
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
            .table_elements(TABLE_ELEMENTS)
            .max_component_instance_size(COMPONENT_INSTANCE_SIZE)
            .max_core_instance_size(CORE_INSTANCE_SIZE)
            .total_stacks(INSTANCES_PER_WORKER)
            // The limiter refuses growth past the limit first, as a clean
            // memory-limit error; this is only the backstop. A wasm memory
            // never grows past 4 GiB, nor may a slot be sized past it.
            .max_memory_size(settings.max_memory.saturating_add(1 << 16).min(4 << 30) as usize)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        // A worker never compiles; one thread is all it has to spare.
        config.parallel_compilation(false);
    }
    config
}

fn build(config: &Config) -> Result<Engine, Error> {
    Engine::new(config).map_err(config_error)
}

fn config_error(err: wasmtime::Error) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("cannot configure the wasm engine: {err:#}"),
    )
}
