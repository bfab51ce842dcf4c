//! Callbacks that keep their place in line, pure like the call's other decisions. A flow's
//! `[callback]` makes the hold loop offer "press 1 to be called back": the caller hangs up and
//! their task stays in line with its age and priority, its attributes saying `callback`. When
//! an agent accepts it, Switchboard calls the customer and the agent into the task's conference
//! at once (`Voice::call_out`, as any outbound call: the agent's phone answers first as a
//! rule, and the customer never waits alone for long). A try the customer does not answer
//! (busy, no answer, failed) is tried again `retry_after` seconds later, with the same agent,
//! up to `attempts` tries; then, by the flow's `then`, the agent keeps it as a voicemail to
//! call back by hand or complete, or it ends. Each step is written into the task's
//! `callback` attribute (`status`, `attempts`, `next_attempt_at`), so it shows on the agent
//! page and through the API.

use serde_json::Value;

use crate::ivr::{self, CallbackEnd, CallbackOffer};
use crate::routing::{Command, Millis, TaskStatus};
use crate::twiml::{self, Method, Response, Verb};

use super::call::{Action, Call, Context, Decision, Seen, Stage, goodbye};
use super::{conference, paths};

const REQUESTED: &str =
    "Thank you. We will call you back at this number, and you keep your place in line. Goodbye.";

/// What a callback task's attributes say of it, while it is being called back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackState {
    /// Tries made so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub retry_after: u32,
    pub then: CallbackEnd,
}

/// The `callback` attribute of a task, if it asks to be called back.
pub fn state_of(attributes: &Value) -> Option<CallbackState> {
    let callback = attributes.get("callback")?;
    let number =
        |field: &str| callback.get(field).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
    let then = serde_json::from_value(callback.get("then")?.clone()).ok()?;
    Some(CallbackState {
        attempts: number("attempts")?,
        max_attempts: number("max_attempts")?,
        retry_after: number("retry_after")?,
        then,
    })
}

/// The number of a callback request no try was made for yet (`status` still `waiting`).
pub fn never_tried(attributes: &Value) -> Option<&str> {
    let callback = attributes.get("callback")?;
    (callback["status"] == "waiting").then(|| callback["number"].as_str()).flatten()
}

/// The `callback` attribute of a new request.
pub fn requested(number: &str, offer: &CallbackOffer, now: Millis) -> Value {
    serde_json::json!({
        "number": number,
        "status": "waiting",
        "requested_at": crate::live::timestamp(now).to_string(),
        "attempts": 0,
        "max_attempts": offer.attempts,
        "retry_after": offer.retry_after,
        "then": offer.then,
    })
}

/// The flow's offer, when the caller has waited long enough for it.
pub fn offer<'a>(call: &Call, seen: &Seen, cx: Context<'a>) -> Option<&'a CallbackOffer> {
    let offer = cx.flow.callback.as_ref()?;
    let waited = cx.now - call.started_at;
    (seen.status.is_some_and(TaskStatus::is_waiting) && waited >= Millis::from(offer.offer_after) * 1000)
        .then_some(offer)
}

/// The hold loop's verbs with the offer: within a one-key `<Gather>` to `/voice/wait`, said
/// with each announcement of the place in line (`announce`).
pub fn hold_with_offer(
    offer: &CallbackOffer,
    prompts: Vec<Verb>,
    announce: bool,
    call: &Call,
    cx: Context<'_>,
) -> Vec<Verb> {
    let mut gathered: Vec<twiml::Prompt> = Vec::new();
    let said = format!(
        "To be called back at this number without losing your place in line, press {}.",
        spoken(&offer.key)
    );
    for verb in prompts {
        match verb {
            Verb::Pause { length } => {
                if announce {
                    gathered.push(twiml::Prompt::Say(ivr::say(cx.flow, &call.place.language, &said)));
                }
                gathered.push(twiml::Prompt::Pause { length });
            }
            Verb::Play(play) => {
                if announce {
                    gathered.push(twiml::Prompt::Say(ivr::say(cx.flow, &call.place.language, &said)));
                }
                gathered.push(twiml::Prompt::Play(play));
            }
            Verb::Say(say) => gathered.push(twiml::Prompt::Say(say)),
            _ => {}
        }
    }
    let gather = twiml::Gather {
        action: Some(paths::WAIT.to_owned()),
        method: Some(Method::Post),
        input: Some("dtmf".to_owned()),
        timeout: Some(1),
        num_digits: Some(1),
        finish_on_key: ivr::one_key_finish(offer.key == "#"),
        prompts: gathered,
        ..twiml::Gather::default()
    };
    vec![Verb::Gather(gather), Verb::Redirect { url: paths::WAIT.to_owned(), method: Some(Method::Post) }]
}

fn spoken(key: &str) -> &str {
    match key {
        "*" => "star",
        "#" => "pound",
        key => key,
    }
}

/// `/voice/wait` with the offer's key pressed: the caller is thanked and hangs up; their task
/// stays in line, its attributes saying whom to call back. None for any other key.
pub fn on_key(call: &mut Call, seen: &Seen, digits: &str, cx: Context<'_>) -> Option<Decision> {
    let offer = offer(call, seen, cx).filter(|offer| offer.key == digits)?;
    let attribute = requested(&call.from, offer, cx.now);
    let thanks = goodbye(cx.flow, &call.place.language, REQUESTED);
    Some(Decision::answer(thanks).with(Action::MarkCallback { attribute }).with(Action::Forget))
}

/// The customer did not answer a try (busy, no answer, failed): tried again later with the
/// same agent, or after the last try kept by the agent as a voicemail, or ended.
pub fn on_unanswered(call: &mut Call, seen: &Seen, cx: Context<'_>) -> Decision {
    let nothing = Decision::answer(Response::default());
    let Some(state) = seen.callback else { return super::call::on_call_ended(call, seen, cx) };
    let hang_up_agent = conference::agent_to_hang_up(call);
    let agent = |decision: Decision| match hang_up_agent.clone() {
        Some(action) => decision.with(action),
        None => decision,
    };
    if state.attempts < state.max_attempts {
        let at = cx.now + Millis::from(state.retry_after) * 1000;
        call.retry_at = Some(at);
        if let Stage::Conference(bridge) = &mut call.stage {
            bridge.agent_call = None;
            bridge.talking = false;
        }
        let mark =
            serde_json::json!({"status": "retry", "next_attempt_at": crate::live::timestamp(at).to_string()});
        return agent(nothing.with(Action::Save).with(Action::MarkCallback { attribute: mark }));
    }
    let mark = Action::MarkCallback {
        attribute: serde_json::json!({"status": "unanswered", "next_attempt_at": null}),
    };
    let decision = agent(nothing.with(mark));
    let decision = match state.then {
        CallbackEnd::Cancel => decision.with(Action::Execute {
            command: Command::Complete {
                task: call.task,
                reason: format!("callback not answered after {} tries", state.attempts),
            },
            why: "the callback was never answered",
        }),
        // The agent keeps it, to call back by hand or complete.
        CallbackEnd::Voicemail => decision,
    };
    decision.with(Action::Forget)
}

/// The sweep: a try due again is made now (once the call's lock is let go).
pub fn on_sweep(call: &mut Call, seen: &Seen, cx: Context<'_>) -> Option<Decision> {
    call.retry_at.filter(|at| *at <= cx.now)?;
    if seen.status != Some(TaskStatus::Assigned) {
        // Completed meanwhile by the agent: nothing more to try.
        return Some(Decision::answer(Response::default()).with(Action::Forget));
    }
    Some(
        Decision::answer(Response::default())
            .with(Action::CallBackAgain { task: call.task, number: call.from.clone() })
            .with(Action::Forget),
    )
}
