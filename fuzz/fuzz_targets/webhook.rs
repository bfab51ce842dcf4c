//! The webhooks' form bodies, query strings and signatures (`switchboard::fuzzing::webhook`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::webhook(data));
