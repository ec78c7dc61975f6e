//! `BPF_MAP_UPDATE_BATCH`: aya 0.14 writes one element per `bpf(2)` call, so a 100,000-rule
//! request would make 200,000 of them for its slots and keys alone. The kernel's batch command
//! (5.6+, array and hash maps) writes many elements per call. It takes no `BPF_NOEXIST`
//! (`elem_flags` allows only `BPF_F_LOCK`): the caller must already know the keys are new.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use aya::{Pod, maps::MapData};
use aya_obj::generated::{bpf_attr, bpf_cmd};

/// Elements per call: bounds the kernel's time in one syscall, as libbpf's users do.
const CHUNK: usize = 8_192;

/// Writes `values[i]` at `keys[i]` for every `i`, in order. On failure the first ones may stay
/// written: the callers undo every key and slot of the request.
pub fn update<K: Pod, V: Pod>(map: &MapData, keys: &[K], values: &[V]) -> io::Result<()> {
    update_per_cpu(map, keys, values, 1)
}

/// As [`update`] for a per-CPU map: `values` holds `cpus` values per key, key after key (`V`'s
/// size a multiple of 8, the kernel's per-CPU stride).
pub fn update_per_cpu<K: Pod, V: Pod>(
    map: &MapData,
    keys: &[K],
    values: &[V],
    cpus: usize,
) -> io::Result<()> {
    assert_eq!(keys.len() * cpus, values.len(), "{cpus} values per key");
    assert!(
        cpus == 1 || std::mem::size_of::<V>().is_multiple_of(8),
        "per-CPU stride"
    );
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    for (k, v) in keys.chunks(CHUNK).zip(values.chunks(CHUNK * cpus)) {
        // SAFETY: a zeroed bpf_attr is the kernel's "no field set"; every field the command
        // reads is set below.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        attr.batch.map_fd = fd;
        attr.batch.keys = k.as_ptr() as u64;
        attr.batch.values = v.as_ptr() as u64;
        attr.batch.count = k.len() as u32;
        // SAFETY: keys and values point at `count` elements of the map's key and value size
        // (K and V are the map's Pod types) that outlive the call; the kernel only reads them
        // and writes back how many it processed (unused: a failure is undone whole).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                bpf_cmd::BPF_MAP_UPDATE_BATCH as libc::c_long,
                &mut attr as *mut bpf_attr,
                std::mem::size_of::<bpf_attr>(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
