//! `Upload-Concat`: `tus::headers::parse_concat` (the mount after the first NUL byte): any bytes either parse, and then what came out holds, or are refused with a
//! 400; never a panic or an overflow.
#![no_main]

use chunked_upload::tus::headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (value, mount) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], String::from_utf8_lossy(&data[i + 1..]).into_owned()),
        None => (data, "/tus/".to_owned()),
    };
    match headers::parse_concat(value, &mount) {
        Ok(headers::ConcatHeader::Partial) => {}
        Ok(headers::ConcatHeader::Final(ids)) => {
            assert!(!ids.is_empty() && ids.len() <= headers::MAX_CONCAT_PARTS);
            for id in &ids {
                assert!(headers::is_upload_id(id), "{id:?}");
            }
        }
        Err(e) => assert_eq!(e.status(), 400, "{e:?}"),
    }
});
