//! `ChunkInfo::validate` on arbitrary numbers: never a panic or an overflow, and whatever it
//! accepts has a consistent geometry (the chunk lies inside the file, sizes within limits).
#![no_main]

use chunked_upload::{ChunkInfo, Limits};
use libfuzzer_sys::fuzz_target;

fn take(data: &mut &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let mut d = data;
    let flags = take(&mut d);
    let pick = |v: u64, bit: u32| (flags >> bit & 1 == 1).then_some(v);
    // Small numbers are interesting too: fold some inputs into small ranges.
    let small = |v: u64, bit: u32| if flags >> bit & 1 == 1 { v % 64 } else { v };
    let index = small(take(&mut d), 8);
    let total_chunks = small(take(&mut d), 9);
    let info = ChunkInfo {
        chunk_size: pick(small(take(&mut d), 10), 0),
        total_size: pick(small(take(&mut d), 11), 1),
        current_chunk_size: pick(small(take(&mut d), 12), 2),
        number_base: flags >> 3 & 1,
        ..ChunkInfo::new("fuzz", index, total_chunks)
    };
    let limits = Limits {
        max_file_size: pick(take(&mut d), 4),
        max_chunk_size: take(&mut d).max(1),
        max_chunks: take(&mut d).max(1),
        ..Limits::default()
    };
    if info.validate(&limits).is_ok() {
        assert!(info.index < info.total_chunks && info.total_chunks <= limits.max_chunks);
        if let Some(size) = info.body_size() {
            assert!(size <= limits.max_chunk_size);
        }
        if let (Some(total), Some(size)) = (info.total_size, info.expected_size()) {
            let end = info.offset().unwrap().checked_add(size).unwrap();
            assert!(end <= total);
            if info.index + 1 == info.total_chunks {
                assert_eq!(end, total, "the last chunk ends the file");
            }
        }
    }
});
