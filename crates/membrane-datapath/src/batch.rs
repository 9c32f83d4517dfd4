//! Batched map writes: many entries of one map in one `bpf(BPF_MAP_UPDATE_BATCH)` call.
//!
//! aya 0.14 has no batch map operations: its typed maps write one entry per
//! `BPF_MAP_UPDATE_ELEM` call. Programming 100,000 Services of ten backends is about
//! 2.2 million entries, and one syscall (with aya's bookkeeping around it) per entry
//! takes seconds; the kernel's batch command (Linux 5.6+, hash and array maps) takes the
//! keys and values as two arrays and writes them in one call. So this module calls the
//! `bpf` syscall itself, with the `batch` member of `union bpf_attr`
//! (`include/uapi/linux/bpf.h`).

use aya::maps::{IterableMap, MapData, MapError};
use aya::sys::SyscallError;
use std::os::fd::{AsFd, AsRawFd};

/// `enum bpf_cmd`'s `BPF_MAP_UPDATE_BATCH`.
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of `union bpf_attr`, field for field. The kernel copies as many
/// bytes as it is given and zeroes the rest of its `bpf_attr`, so this prefix suffices.
#[repr(C)]
struct BatchAttr {
    /// Unused by updates (a cursor for lookups).
    in_batch: u64,
    /// Unused by updates (a cursor for lookups).
    out_batch: u64,
    /// Address of the keys array.
    keys: u64,
    /// Address of the values array.
    values: u64,
    /// Entries to write; the kernel writes back how many it wrote.
    count: u32,
    /// The map.
    map_fd: u32,
    /// Per-entry flags (`BPF_ANY`: create or replace).
    elem_flags: u64,
    /// Command flags (none defined for updates).
    flags: u64,
}
const _: () = assert!(core::mem::size_of::<BatchAttr>() == 56);

/// A batch write that stopped part-way: the first `written` entries are in the map, the
/// rest are not.
#[derive(Debug)]
pub(crate) struct Partial {
    /// Entries written before the failure.
    pub written: usize,
    /// Why the next one was refused (E2BIG: the map is full).
    pub source: MapError,
}

/// Entries per syscall: bounds the time of one call (the kernel writes them one by one)
/// and keeps `count` far inside its 32 bits.
const CHUNK: usize = 1 << 16;

/// Writes `keys[i]` → `values[i]` into `map` (created or replaced), in order, in one
/// syscall per [`CHUNK`] entries. On failure the entries before the refused one stay
/// written.
pub(crate) fn update<M, K, V>(map: &M, keys: &[K], values: &[V]) -> Result<(), Partial>
where
    M: IterableMap<K, V>,
    K: aya::Pod,
    V: aya::Pod,
{
    assert_eq!(keys.len(), values.len(), "one value per key");
    update_fd(fd_of(map), keys, values)
}

/// Writes the entries of many owners (an endpoint's addresses, a rule's trie keys: `of`
/// gives an owner's keys and the value they all take) in order, in one [`update`]. On
/// failure, the index of the owner the batch stopped in (`owners.len()` if it stopped
/// after the last), with the error: the owners before it are written whole.
pub(crate) fn update_owned<M, K, V, O>(
    map: &M,
    owners: &[O],
    of: impl Fn(&O) -> (Vec<K>, V),
) -> Result<(), (usize, Partial)>
where
    M: IterableMap<K, V>,
    K: aya::Pod,
    V: aya::Pod,
{
    let (mut keys, mut values, mut owner_of) = (Vec::new(), Vec::new(), Vec::new());
    for (index, owner) in owners.iter().enumerate() {
        let (owned, value) = of(owner);
        for key in owned {
            keys.push(key);
            values.push(value);
            owner_of.push(index);
        }
    }
    update(map, &keys, &values).map_err(|partial| {
        let stopped_in = owner_of
            .get(partial.written)
            .copied()
            .unwrap_or(owners.len());
        (stopped_in, partial)
    })
}

/// Most threads a large write is split over.
const MAX_THREADS: usize = 4;

/// Writes like [`update`], but a write of more than [`CHUNK`] entries is split into one
/// part per core, written by threads of their own: the kernel's per-entry work (a hash
/// insert each) then runs on every core, which is what a node's first full sync of
/// 100,000 Services waits for. On failure, which entries were written is unknown: the
/// caller must treat every entry as possibly written.
pub(crate) fn update_unordered<M, K, V>(map: &M, keys: &[K], values: &[V]) -> Result<(), MapError>
where
    M: IterableMap<K, V>,
    K: aya::Pod + Sync,
    V: aya::Pod + Sync,
{
    assert_eq!(keys.len(), values.len(), "one value per key");
    let fd = fd_of(map);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    if threads < 2 || keys.len() <= CHUNK {
        return update_fd(fd, keys, values).map_err(|partial| partial.source);
    }
    let part = keys.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let writers: Vec<_> = keys
            .chunks(part)
            .zip(values.chunks(part))
            .map(|(keys, values)| scope.spawn(move || update_fd(fd, keys, values)))
            .collect();
        // Join every writer before answering, failed or not.
        let results: Vec<_> = writers
            .into_iter()
            .map(|writer| writer.join().expect("a map writer thread panicked"))
            .collect();
        results.into_iter().collect::<Result<(), Partial>>()
    })
    .map_err(|partial| partial.source)
}

/// The raw descriptor of `map`, for the syscall.
fn fd_of<M: IterableMap<K, V>, K: aya::Pod, V: aya::Pod>(map: &M) -> i32 {
    let data: &MapData = map.map();
    data.fd().as_fd().as_raw_fd()
}

/// [`update`] on a raw map descriptor.
fn update_fd<K, V>(fd: i32, keys: &[K], values: &[V]) -> Result<(), Partial> {
    let mut written = 0;
    for (keys, values) in keys.chunks(CHUNK).zip(values.chunks(CHUNK)) {
        update_chunk(fd, keys, values).map_err(|(done, io_error)| Partial {
            written: written + done,
            source: MapError::SyscallError(SyscallError {
                call: "bpf_map_update_batch",
                io_error,
            }),
        })?;
        written += keys.len();
    }
    Ok(())
}

/// One `BPF_MAP_UPDATE_BATCH` call of at most [`CHUNK`] entries; on failure, how many
/// were written and the error.
fn update_chunk<K, V>(fd: i32, keys: &[K], values: &[V]) -> Result<(), (usize, std::io::Error)> {
    let mut attr = BatchAttr {
        in_batch: 0,
        out_batch: 0,
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len() as u32,
        map_fd: fd as u32,
        elem_flags: 0,
        flags: 0,
    };
    // SAFETY: `attr` is a valid `bpf_attr` prefix of its own size; the kernel reads
    // `count` keys and values of the map's key and value sizes (those of `K` and `V`,
    // which aya checked when the map was opened) from the two slices, which outlive the
    // call, and writes only `attr.count`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_BATCH,
            &mut attr as *mut BatchAttr,
            core::mem::size_of::<BatchAttr>() as libc::c_uint,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    // The kernel writes back the count of entries it wrote once it starts writing; a
    // call refused before that (a map type without batches) leaves it as it was.
    let done = attr.count as usize;
    Err((if done < keys.len() { done } else { 0 }, error))
}
