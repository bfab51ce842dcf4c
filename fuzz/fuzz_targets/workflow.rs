//! Workflow configurations: any text read as one, and what parses walked (`switchboard::fuzzing::workflow`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::workflow(data));
