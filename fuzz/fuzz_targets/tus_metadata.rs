//! `Upload-Metadata`: `tus::headers::parse_metadata`, and `encode_metadata` of what it accepts: any bytes either parse, and then what came out holds, or are refused with a
//! 400; never a panic or an overflow.
#![no_main]

use chunked_upload::tus::headers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match headers::parse_metadata(data) {
        Ok(map) => {
            // What was accepted encodes to a header that parses to the same pairs.
            let encoded = headers::encode_metadata(&map);
            assert_eq!(headers::parse_metadata(encoded.as_bytes()).expect("re-parses"), map);
            for key in map.keys() {
                assert!(!key.is_empty() && !key.contains([',', ' ']), "{key:?}");
            }
        }
        Err(e) => assert_eq!(e.status(), 400, "{e:?}"),
    }
});
