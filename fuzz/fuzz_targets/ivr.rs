//! IVR flow files: any text loaded as one, and what loads walked by voice and text (`switchboard::fuzzing::ivr`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::ivr(data));
