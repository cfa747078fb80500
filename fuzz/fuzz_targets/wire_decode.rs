//! Any bytes into the sync wire decoders. What decodes must encode to bytes
//! that decode to the same message (not to the same bytes: a decoder may
//! accept a long form of a number that the encoder writes short).
#![no_main]

use libfuzzer_sys::fuzz_target;
use linli_core::sync::wire::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        let again = req.encode();
        assert!(again.len() <= data.len(), "an encoding is never longer than what it was decoded from");
        assert_eq!(Request::decode(&again).as_ref(), Ok(&req), "a request round-trips");
    }
    if let Ok(resp) = Response::decode(data) {
        let again = resp.encode();
        assert!(again.len() <= data.len(), "an encoding is never longer than what it was decoded from");
        assert_eq!(Response::decode(&again).as_ref(), Ok(&resp), "a response round-trips");
    }
});
