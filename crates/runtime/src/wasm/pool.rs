//! Sizing the pooling allocator for this host.
//!
//! wasmtime's pooling allocator reserves address space for every slot up
//! front (linear memories, tables, instance state, async stacks) and hands
//! slots out in microseconds. Two host limits decide how many slots a node
//! can have:
//!
//! - **Memory mappings.** Each async stack has a guard page and each live
//!   memory or table is made accessible with `mprotect`, splitting the
//!   pool's mapping: every slot costs a few entries of the process's
//!   mapping table, which the kernel caps at `vm.max_map_count` (65530 by
//!   default). Running out does not fail one allocation cleanly: `mmap` or
//!   `mprotect` fail anywhere in the process. So the pool is capped below
//!   the limit, leaving room for everything else the agent maps.
//! - **Address space.** Every memory slot reserves the largest memory a
//!   guest may have ([`super::WasmConfig::max_memory`]); x86-64 user space
//!   is 128 TiB, and half of it is the most the pool may take.
//!
//! A node that wants more pods than the default mapping limit allows
//! raises `vm.max_map_count` (as databases and search engines ask their
//! hosts to) or lowers the largest Wasm memory.

use std::path::Path;

/// Mapping-table entries one slot costs, measured with `skiff bench wasm`
/// (idle WASI command modules): two when the pool is created (each async
/// stack's guard page splits the stack pool's mapping) and two more while
/// an instance lives in it (its memory and table made accessible). A pool
/// sized at 3 per slot aborted the node at 18,000 pods.
pub const MAPS_PER_SLOT: u64 = 4;
/// Entries left for everything that is not the pool: code of compiled
/// modules, thread stacks, files, the allocator's arenas.
pub const RESERVED_MAPS: u64 = 8192;
/// The most address space the pool may reserve.
pub const MAX_RESERVATION: u64 = 64 << 40;
/// The guard after every linear memory. Small, so the pool scales to many
/// slots; wasmtime adds bounds checks where a guard cannot prove an access
/// safe.
pub const GUARD: u64 = 64 << 10;

/// How many instances the pool holds and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    /// Pod containers that can run at once.
    pub slots: u32,
    /// The largest linear memory of any guest, in bytes.
    pub max_memory: u64,
    /// `vm.max_map_count`, when it could be read.
    pub max_map_count: Option<u64>,
    /// What capped `slots` below the request, if anything.
    pub capped_by: Option<&'static str>,
}

impl Sizing {
    /// The pool for `requested` instances of at most `max_memory` bytes on
    /// this host.
    pub fn for_host(requested: u32, max_memory: u64) -> Sizing {
        let maps = read_u64(Path::new("/proc/sys/vm/max_map_count"));
        Sizing::compute(requested, max_memory, maps)
    }

    /// The pool for `requested` instances given the host's mapping limit.
    pub fn compute(requested: u32, max_memory: u64, max_map_count: Option<u64>) -> Sizing {
        let max_memory = round_to_page(max_memory.max(64 << 10));
        let mut slots = u64::from(requested.max(1));
        let mut capped_by = None;
        if let Some(limit) = max_map_count {
            let by_maps = limit.saturating_sub(RESERVED_MAPS) / MAPS_PER_SLOT;
            if by_maps < slots {
                slots = by_maps.max(1);
                capped_by = Some("vm.max_map_count");
            }
        }
        let per_slot = 2 * (max_memory + GUARD);
        let by_space = MAX_RESERVATION / per_slot;
        if by_space < slots {
            slots = by_space.max(1);
            capped_by = Some("address space (lower the largest Wasm memory)");
        }
        Sizing {
            slots: u32::try_from(slots).unwrap_or(u32::MAX),
            max_memory,
            max_map_count,
            capped_by,
        }
    }

    /// Configure `c` for this pool.
    pub fn apply(&self, c: &mut wasmtime::Config) {
        let slots = self.slots;
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        // A module is one core instance with one memory and one table; a
        // component built from a module with the WASI adapter has a few of
        // each. Twice the slots covers a mix at the cost of address space
        // only (unused slots are never made accessible).
        pool.total_core_instances(slots.saturating_mul(2))
            .total_component_instances(slots)
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(2))
            .total_stacks(slots)
            .max_memory_size(usize::try_from(self.max_memory).unwrap_or(usize::MAX))
            // Freed memories are reset with madvise (wasmtime's default),
            // not memset: HTTP functions free an instance per request, and
            // keeping 1 MiB resident (memset on free) measured 7.1k req/s
            // through the gateway against 11.1k with madvise. Batching the
            // madvise calls (fewer TLB shootdowns across cores) measured
            // 10.8k against 8.9k unbatched in one run.
            .decommit_batch_size(DECOMMIT_BATCH);
        c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        c.memory_reservation(self.max_memory)
            .memory_guard_size(GUARD)
            .memory_reservation_for_growth(0);
    }
}

/// Freed instances whose memory is returned to the kernel together.
pub const DECOMMIT_BATCH: usize = 32;

/// Raise this process's open-file limit as far as the host allows and
/// return the new soft limit. Every running Wasm container holds a few
/// descriptors (its log file, its preopened directories), so the usual
/// soft limit (1,024, or whatever the service manager set) caps a node
/// long before memory does. Root may raise the hard limit up to
/// `fs.nr_open`; others raise the soft limit to the hard one.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let nr_open = read_u64(Path::new("/proc/sys/fs/nr_open"));
    let hard = current.maximum;
    if let Some(target) = nr_open.filter(|n| hard.is_some_and(|h| *n > h)) {
        let wanted = Rlimit {
            current: Some(target),
            maximum: Some(target),
        };
        if setrlimit(Resource::Nofile, wanted).is_ok() {
            return Some(target);
        }
    }
    let raised = Rlimit {
        current: hard,
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => hard,
        Err(_) => current.current,
    }
}

fn round_to_page(n: u64) -> u64 {
    n.div_ceil(64 << 10) * (64 << 10)
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mapping_limit_caps_the_pool() {
        // 65530 is the kernel's default; 100,000 pods cannot fit in it.
        let s = Sizing::compute(100_000, 64 << 20, Some(65530));
        assert_eq!(s.slots as u64, (65530 - RESERVED_MAPS) / MAPS_PER_SLOT);
        assert_eq!(s.capped_by, Some("vm.max_map_count"));
    }

    #[test]
    fn a_raised_mapping_limit_lets_the_request_through() {
        let s = Sizing::compute(100_000, 64 << 20, Some(1 << 20));
        assert_eq!(s.slots, 100_000);
        assert_eq!(s.capped_by, None);
    }

    #[test]
    fn large_memories_are_capped_by_address_space() {
        let s = Sizing::compute(100_000, 4 << 30, Some(u64::MAX / 2));
        assert!(s.slots < 100_000);
        assert!(u64::from(s.slots) * 2 * (s.max_memory + GUARD) <= MAX_RESERVATION);
        assert!(s.capped_by.is_some_and(|c| c.contains("address space")));
    }

    #[test]
    fn the_open_files_limit_only_goes_up() {
        use rustix::process::{getrlimit, Resource};
        let before = getrlimit(Resource::Nofile).current;
        let after = raise_open_files_limit();
        assert!(after >= before, "{before:?} -> {after:?}");
        assert_eq!(getrlimit(Resource::Nofile).current, after);
    }

    #[test]
    fn memory_rounds_up_to_wasm_pages() {
        assert_eq!(Sizing::compute(1, 100_000, None).max_memory, 128 << 10);
        assert_eq!(Sizing::compute(1, 0, None).max_memory, 64 << 10);
    }
}
