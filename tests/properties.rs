//! Properties of the chunk geometry and of `Uploads::save`, checked with proptest:
//!
//! - for any file size (up to `u64::MAX`) and chunk size, either geometry (flow.js's default
//!   `floor`, the last chunk up to twice the chunk size, and `forceChunkSize`'s `ceil`, the last
//!   chunk the remainder), every chunk of the split validates, its expected size and offset are
//!   right (no overflow), and the sizes add up to the file;
//! - one parameter off by one (chunk number, this chunk's size, total chunks) is refused with
//!   `BadRequest` naming that parameter (or, for a total that is the other geometry's, naming
//!   whichever fact then disagrees);
//! - any split of any file up to 2 MiB goes through `Uploads::save` in any order, with
//!   duplicates and one corrupted request in the middle (refused, naming the parameter, and
//!   harmless), and comes out byte-identical, assembled once.
//!
//! `CHUNKED_UPLOAD_LONG=1` runs four times as many cases.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chunked_upload::{
    ChunkBody, ChunkInfo, ConflictPolicy, Error, Limits, Outcome, RawRequest, RequestKind, Uploads,
};
use common::{FlowFile, Rng, bytes, config, visible_files};
use proptest::prelude::*;

fn cases(normal: u32) -> u32 {
    if std::env::var_os("CHUNKED_UPLOAD_LONG").is_some() {
        normal * 4
    } else {
        normal
    }
}

/// No limits: the geometry alone decides.
fn unlimited() -> Limits {
    Limits {
        max_file_size: None,
        max_chunk_size: u64::MAX,
        max_chunks: u64::MAX,
        ..Limits::default()
    }
}

/// Number of chunks of a `size`-byte file in chunks of `cs`: flow.js's default (`floor`) or
/// `forceChunkSize` (`ceil`); an empty file is one chunk.
fn chunks(size: u64, cs: u64, ceil: bool) -> u64 {
    let n = if ceil { size.div_ceil(cs) } else { size / cs };
    n.max(1)
}

/// Size of chunk `index` of `n`.
fn chunk_len(size: u64, cs: u64, n: u64, index: u64) -> u64 {
    if index + 1 < n {
        cs
    } else {
        size - cs * (n - 1)
    }
}

/// The chunk as a widget declares it (neutral field names).
fn declared(size: u64, cs: u64, n: u64, index: u64, current: u64) -> ChunkInfo {
    ChunkInfo {
        chunk_size: Some(cs),
        total_size: Some(size),
        current_chunk_size: Some(current),
        ..ChunkInfo::new("id", index, n)
    }
}

/// Sizes from tiny to `u64::MAX`, with the edges often.
fn any_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..=4096u64,
        0..=(1u64 << 40),
        any::<u64>(),
        (u64::MAX - 4096)..=u64::MAX,
    ]
}

fn any_chunk_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        1..=64u64,
        1..=(1u64 << 30),
        any::<u64>().prop_map(|x| x.max(1)),
        (u64::MAX - 4096)..=u64::MAX,
    ]
}

/// A few indices of an `n`-chunk split: the first two, the last two, and one at random.
fn indices(n: u64, pick: u64) -> Vec<u64> {
    let mut v = vec![0, 1, n / 2, n.saturating_sub(2), n - 1, pick % n];
    v.retain(|&i| i < n);
    v.sort_unstable();
    v.dedup();
    v
}

#[track_caller]
fn assert_bad(result: Result<(), Error>, field: &str, context: &str) {
    match result {
        Err(Error::BadRequest {
            field: f, problem, ..
        }) => {
            assert_eq!(f, field, "{context}: refused naming {f:?} ({problem})");
        }
        other => panic!("{context}: expected BadRequest naming {field:?}, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(3000)))]

    /// Every chunk of any split validates, with the right expected size and offset.
    #[test]
    fn every_valid_split_validates(
        size in any_size(),
        cs in any_chunk_size(),
        ceil in any::<bool>(),
        pick in any::<u64>(),
    ) {
        let n = chunks(size, cs, ceil);
        // Sizes add up, without overflow: n - 1 full chunks fit in the file.
        let full = cs.checked_mul(n - 1).expect("n - 1 full chunks fit in u64");
        prop_assert!(full <= size);
        let last = size - full;
        if n > 1 {
            // The last chunk holds between 1 and 2 chunk sizes (floor) or at most one (ceil).
            prop_assert!(last >= 1);
            let in_bounds = if ceil { last <= cs } else { last / 2 < cs };
            prop_assert!(in_bounds, "last chunk {} of a {}-chunk split in chunks of {}", last, n, cs);
        }
        for index in indices(n, pick) {
            let len = chunk_len(size, cs, n, index);
            let info = declared(size, cs, n, index, len);
            prop_assert_eq!(info.validate(&unlimited()).map_err(|e| e.to_string()), Ok(()));
            prop_assert_eq!(info.expected_size(), Some(len));
            prop_assert_eq!(info.body_size(), Some(len));
            prop_assert_eq!(info.offset(), Some(cs * index));
            prop_assert!(cs * index + len <= size);
        }
    }

    /// A chunk number, size or total chunks off by one is refused, naming the parameter.
    #[test]
    fn one_parameter_off_by_one_is_refused_naming_it(
        size in any_size(),
        cs in any_chunk_size(),
        ceil in any::<bool>(),
        pick in any::<u64>(),
        up in any::<bool>(),
    ) {
        let limits = unlimited();
        let n = chunks(size, cs, ceil);
        let index = pick % n;
        let len = chunk_len(size, cs, n, index);
        let context = format!("{size} bytes, chunks of {cs}, {n} chunks, index {index}");

        // The chunk number, one past the last (0-based here; `flowChunkNumber=0`, one before
        // the first, is the round trip's).
        assert_bad(declared(size, cs, n, n, len).validate(&limits), "chunk_number", &context);
        // This chunk's size, one more or one less.
        let off = if up { len.checked_add(1) } else { len.checked_sub(1) };
        if let Some(off) = off {
            assert_bad(
                declared(size, cs, n, index, off).validate(&limits),
                "current_chunk_size",
                &context,
            );
        }
        // The number of chunks, one more or one less.
        let other = if up { n.checked_add(1) } else { n.checked_sub(1) };
        if let Some(other) = other {
            let result = declared(size, cs, other, index, len).validate(&limits);
            let (floor, ceiling) = (chunks(size, cs, false), chunks(size, cs, true));
            if other == 0 {
                assert_bad(result, "total_chunks", &context);
            } else if index >= other {
                assert_bad(result, "chunk_number", &context);
            } else if other != floor && other != ceiling {
                assert_bad(result, "total_chunks", &context);
            } else if chunk_len(size, cs, other, index) != len {
                // The other geometry: then this chunk's size disagrees.
                assert_bad(result, "current_chunk_size", &context);
            } else {
                // The other geometry, and this chunk is the same in both: nothing to refuse
                // here (`save` refuses it once the upload started: the geometry changed).
                prop_assert!(result.is_ok(), "{context}: {result:?}");
            }
        }
    }
}

/// How the one corrupted request of a round trip is wrong.
#[derive(Debug, Clone, Copy)]
enum Corruption {
    NumberZero,
    NumberPastEnd,
    DeclaredSize(bool),
    Body(bool),
    TotalChunks(bool),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::NumberZero),
        Just(Corruption::NumberPastEnd),
        any::<bool>().prop_map(Corruption::DeclaredSize),
        any::<bool>().prop_map(Corruption::Body),
        any::<bool>().prop_map(Corruption::TotalChunks),
    ]
}

/// Chunk `number` of `file` corrupted as `c`, and the field the refusal must name (`None`
/// when the corruption cannot apply to this chunk).
fn corrupted(file: &FlowFile, number: u64, c: Corruption) -> Option<(RawRequest, &'static str)> {
    let n = file.total_chunks();
    let mut params = file.params(number);
    let mut body = file.data[file.range(number)].to_vec();
    let len = body.len() as u64;
    let field = match c {
        Corruption::NumberZero => {
            params.insert("flowChunkNumber", "0").ok()?;
            "flowChunkNumber"
        }
        Corruption::NumberPastEnd => {
            params.insert("flowChunkNumber", (n + 1).to_string()).ok()?;
            "flowChunkNumber"
        }
        Corruption::DeclaredSize(up) => {
            let off = if up { len + 1 } else { len.checked_sub(1)? };
            params
                .insert("flowCurrentChunkSize", off.to_string())
                .ok()?;
            "flowCurrentChunkSize"
        }
        Corruption::Body(up) => {
            if up {
                body.push(0x5A);
            } else {
                body.pop()?;
            }
            "body"
        }
        Corruption::TotalChunks(up) => {
            let other = if up { n + 1 } else { n - 1 };
            let size = file.data.len() as u64;
            let cs = file.chunk_size;
            let index = number - 1;
            let field = if other == 0 {
                "flowTotalChunks"
            } else if index >= other {
                "flowChunkNumber"
            } else if other != chunks(size, cs, false) && other != chunks(size, cs, true) {
                "flowTotalChunks"
            } else if chunk_len(size, cs, other, index) != len {
                "flowCurrentChunkSize"
            } else {
                // Valid on its own; the upload (started) refuses the change of geometry.
                "geometry"
            };
            params.insert("flowTotalChunks", other.to_string()).ok()?;
            field
        }
    };
    let request = RawRequest::new(RequestKind::Upload, params)
        .with_scope("prop")
        .with_body(ChunkBody::bytes(body));
    Some((request, field))
}

/// A file of up to 2 MiB and a chunk size that makes 1 to about 40 chunks of it.
fn file_and_chunk_size() -> impl Strategy<Value = (u64, u64, bool)> {
    let size = prop_oneof![0..=64u64, 0..=(64u64 << 10), 0..=(2u64 << 20)];
    (size, 1..=40u64, -3i64..=3, any::<bool>()).prop_map(|(size, count, jitter, ceil)| {
        let cs = (size / count).saturating_add_signed(jitter).max(1);
        (size, cs, ceil)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    /// Any split, saved in any order with duplicates and one corrupted request: refused naming
    /// the parameter, and the file still comes out byte-identical, assembled once.
    #[test]
    fn any_split_round_trips_through_save_in_any_order(
        (size, cs, ceil) in file_and_chunk_size(),
        seed in any::<u64>(),
        c in corruption(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let hooks = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&hooks);
        let uploads = Uploads::new(
            config(dir.path())
                .on_conflict(ConflictPolicy::Rename)
                .on_assembled(move |_| {
                    counter.fetch_add(1, Ordering::SeqCst);
                })
                .build(),
        )
        .unwrap();
        let file = FlowFile {
            force_chunk_size: ceil,
            ..FlowFile::new("prop.bin", bytes(size as usize, seed), cs)
        };
        let n = file.total_chunks();
        prop_assert_eq!(n, chunks(size, cs, ceil));
        let mut rng = Rng(seed | 1);
        let mut order: Vec<u64> = (1..=n).collect();
        rng.shuffle(&mut order);
        // Duplicates, before the last new chunk arrives.
        let dups: Vec<u64> = order[..order.len() - 1]
            .iter()
            .copied()
            .filter(|_| rng.below(4) == 0)
            .collect();
        let last = order.pop().unwrap();
        order.extend(dups);
        rng.shuffle(&mut order);
        order.push(last);

        let mut fresh = 0;
        let mut stored = std::collections::HashSet::new();
        for (i, &number) in order.iter().enumerate() {
            if i == 1.min(order.len() - 1) {
                // After the first chunk (the upload has started), one corrupted request.
                let victim = 1 + rng.below(n);
                if let Some((mut request, field)) = corrupted(&file, victim, c) {
                    let result = uploads.save(&mut request);
                    let context = format!("{c:?} on chunk {victim} of {n}: {result:?}");
                    match field {
                        "geometry" => prop_assert!(
                            matches!(&result, Err(Error::GeometryMismatch { field, .. }) if *field == "total chunks"),
                            "{}", context
                        ),
                        _ => prop_assert!(
                            matches!(&result, Err(Error::BadRequest { field: f, .. }) if f == field),
                            "{}", context
                        ),
                    }
                    if !stored.contains(&victim) {
                        let mut test = file.test(victim, "prop");
                        prop_assert!(
                            matches!(uploads.save(&mut test), Err(Error::NoContent { .. })),
                            "{}: the refused chunk is absent", context
                        );
                    }
                }
            }
            let request = &mut file.upload(number, "prop");
            match uploads.save(request) {
                Ok(Outcome::ChunkStored { .. }) => {}
                Ok(Outcome::Assembled { fresh: true, file: done }) => {
                    fresh += 1;
                    prop_assert_eq!(done.size, size);
                }
                other => prop_assert!(false, "chunk {} of {}: {:?}", number, n, other),
            }
            stored.insert(number);
        }
        prop_assert_eq!(fresh, 1);
        prop_assert_eq!(hooks.load(Ordering::SeqCst), 1);
        let files = dir.path().join("files");
        prop_assert_eq!(visible_files(&files), vec!["prop.bin".to_owned()]);
        let got = std::fs::read(files.join("prop.bin")).unwrap();
        prop_assert!(got == file.data, "{} bytes, expected {}", got.len(), size);
    }
}
