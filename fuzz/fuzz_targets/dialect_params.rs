//! Every dialect's parameter parsing and the chunk validation behind it: a query string (plus a
//! part file name after a NUL byte) as a test request and as an upload. Any input either yields
//! a chunk that passed validation, whose geometry then holds, or an error that is a client
//! error (4xx); never a panic or an overflow.
#![no_main]

use chunked_upload::{ChunkRequest, Dialects, Limits, Params, RawRequest, RequestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, part_name) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(params) = Params::from_urlencoded(query) else { return };
    let dialects = Dialects::default();
    let limits = Limits::default();
    for kind in [RequestKind::Test, RequestKind::Upload] {
        let mut request = RawRequest::new(kind, params.clone());
        if let Some(name) = part_name.and_then(|n| std::str::from_utf8(n).ok()) {
            request.set_part_filename(name);
        }
        assert_eq!(request.is_test(), kind == RequestKind::Test);
        let info = match dialects.parse(&request) {
            Ok(info) => info,
            Err(e) => {
                assert!((400..500).contains(&e.status()), "{e:?}");
                continue;
            }
        };
        match info.validate(&limits) {
            Ok(()) => {
                assert!(info.index < info.total_chunks);
                if let (Some(total), Some(size)) = (info.total_size, info.expected_size()) {
                    let offset = info.offset().expect("validated geometry has an offset");
                    assert!(offset.checked_add(size).is_some_and(|end| end <= total));
                }
            }
            Err(e) => assert!((400..500).contains(&e.status()), "{e:?}"),
        }
    }
});
