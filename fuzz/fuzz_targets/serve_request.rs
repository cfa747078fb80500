//! Any bytes as the body of `POST /v1/sync`, with a valid `linli-auth`
//! header signed by a device of the world's admin, against one store. The
//! answer is a response that decodes or a `ServeError` other than
//! `Internal`, never a panic; the store is checked every few inputs.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use linli_core::sync::wire::Response;
use linli_core::sync::{Creators, SYNC_PATH, ServeError, auth, serve_sync};
use linli_fuzz::{guarded, key, with_world};

fuzz_target!(|body: &[u8]| {
    with_world(|w| {
        let now = w.fixture.now;
        let header = auth::header_with_key(key(), &w.store.device_id(), SYNC_PATH, now, body).expect("header");
        // The fuzzer's device may also create spaces here.
        let creators = Creators::Devices(BTreeSet::from([key().id()]));
        let served = guarded("serve_sync", || serve_sync(&w.store, &creators, Some(&header), body, now));
        let accepted = match served {
            Ok(s) => {
                Response::decode(&s.body).expect("the answer decodes");
                s.accepted > 0
            }
            Err(ServeError::Internal(e)) => panic!("internal error on a request: {e}"),
            Err(_) => false,
        };
        w.settle(accepted);
    });
});
