//! `BPF_MAP_UPDATE_BATCH` and `BPF_MAP_DELETE_BATCH`: aya 0.14 writes one element per `bpf(2)`
//! call, so a 100,000-rule request would make 200,000 of them for its slots and keys alone. The
//! kernel's batch commands (5.6+, array and hash maps) take many elements per call. Updates take
//! no `BPF_NOEXIST` (`elem_flags` allows only `BPF_F_LOCK`): the caller must already know the
//! keys are new.

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
    assert_eq!(keys.len(), values.len(), "one value per key");
    for (k, v) in keys.chunks(CHUNK).zip(values.chunks(CHUNK)) {
        // The count written back is not needed: a failed update is undone whole.
        call(bpf_cmd::BPF_MAP_UPDATE_BATCH, map, k, v.as_ptr() as u64).map_err(|(_, e)| e)?;
    }
    Ok(())
}

/// Deletes `keys` in order. On failure, how many were deleted (from the first) and why the next
/// one was not: the kernel stops at the first key it cannot delete.
pub fn delete<K: Pod>(map: &MapData, keys: &[K]) -> Result<(), (usize, io::Error)> {
    let mut done = 0;
    for k in keys.chunks(CHUNK) {
        call(bpf_cmd::BPF_MAP_DELETE_BATCH, map, k, 0).map_err(|(n, e)| (done + n, e))?;
        done += k.len();
    }
    Ok(())
}

/// One batch command over `keys` (and `values`, an address the command reads as many values
/// from, or 0); on failure, how many elements the kernel processed.
fn call<K: Pod>(
    cmd: bpf_cmd,
    map: &MapData,
    keys: &[K],
    values: u64,
) -> Result<(), (usize, io::Error)> {
    // SAFETY: a zeroed bpf_attr is the kernel's "no field set"; every field the command reads
    // is set below.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.batch.map_fd = map.fd().as_fd().as_raw_fd() as u32;
    attr.batch.keys = keys.as_ptr() as u64;
    attr.batch.values = values;
    attr.batch.count = keys.len() as u32;
    // SAFETY: keys (and values) point at `count` elements of the map's key (and value) size,
    // K and V being the map's Pod types, that outlive the call; the kernel only reads them and
    // writes back into `attr` how many it processed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            &mut attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: `batch` is the union member written above and by the kernel.
        let processed = unsafe { attr.batch.count } as usize;
        return Err((processed.min(keys.len()), e));
    }
    Ok(())
}
