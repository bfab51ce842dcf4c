//! The IVR walk alone (issue #21), in process: one step of the shipped menu (an invalid key,
//! re-prompted) beside one step of a flow whose `when` reads 20 variables (digits collected,
//! five conditions, a menu), each with the caller's variables read from and written into the
//! action URL as the server does. `cargo bench --bench voice` measures the same two over HTTP.
//!
//! Run: `cargo bench --bench ivr`.

use std::hint::black_box;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use switchboard::ivr::{CallState, Caller, Input, Medium, Memory, load_flow, step};

#[path = "support/when.rs"]
mod when;
use when::{WHEN_FLOW, twenty_variables};

/// The action URL as the server writes it (`voice::ivr_action`).
fn action(state: &CallState) -> String {
    let mut url = format!("/voice/ivr?flow=when.toml&menu={}&language={}", state.menu, state.language);
    let memory = state.memory.encode();
    if !memory.is_empty() {
        url.push_str("&memory=");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(memory, &mut url);
    }
    url
}

fn walk(c: &mut Criterion) {
    let caller = Caller {
        from: "+15550100001",
        to: "+15550100200",
        channel: "voice",
        now: jiff::Timestamp::UNIX_EPOCH,
    };
    let main = load_flow(include_str!("../ivr/main.toml")).unwrap();
    let at_main = CallState::new(&main, jiff::Timestamp::UNIX_EPOCH);
    c.bench_function("ivr step: the shipped menu, an invalid key", |b| {
        b.iter(|| {
            let step = step(
                &main,
                black_box(at_main.clone()),
                &Input::Digits("7".into()),
                Medium::Voice(&action),
                &caller,
            );
            black_box(step.response.to_xml())
        })
    });
    let when = load_flow(WHEN_FLOW).unwrap();
    let carried = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(twenty_variables());
    let at_account = CallState::new(&when, jiff::Timestamp::UNIX_EPOCH);
    c.bench_function("ivr step: collect, a when over 20 variables, a menu", |b| {
        b.iter(|| {
            let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(black_box(&carried)).unwrap();
            let memory = Memory::decode_bytes(&json);
            let state = CallState { memory, ..at_account.clone() };
            let step = step(&when, state, &Input::Digits("12345678".into()), Medium::Voice(&action), &caller);
            black_box(step.response.to_xml())
        })
    });
}

criterion_group!(benches, walk);
criterion_main!(benches);
