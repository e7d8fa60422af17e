//! `Params::from_urlencoded`: any bytes either parse or give a `BadRequest`; never a panic, and
//! every value kept is within the length limit.
#![no_main]

use chunked_upload::{Error, MAX_PARAM_LEN, Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Params::from_urlencoded(data) {
        Ok(params) => {
            for (_, value) in params.iter() {
                assert!(value.len() <= MAX_PARAM_LEN);
            }
        }
        Err(Error::BadRequest { .. }) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }
});
