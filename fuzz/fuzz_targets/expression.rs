//! The expression language: any text compiled in every context, and what compiles evaluated (`switchboard::fuzzing::expression`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::expression(data));
