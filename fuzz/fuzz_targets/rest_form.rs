//! The REST API's form bodies and query strings, read every way the API reads a parameter (`switchboard::fuzzing::rest_form`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::rest_form(data));
