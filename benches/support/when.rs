//! What the `when` benchmarks share (issue #21: `voice` over HTTP, `ivr` in process): the flow,
//! and the 20 variables each call carries into it.

/// Digits collected, then five conditions over the variables, then a menu.
pub const WHEN_FLOW: &str = include_str!("when.toml");

/// The 20 variables the calls carry, as the JSON of their memory (`{"v": {...}}`): texts,
/// numbers and booleans.
pub fn twenty_variables() -> String {
    let variables: serde_json::Map<String, serde_json::Value> = (1..=20)
        .map(|n| {
            let value = match n % 3 {
                0 => serde_json::json!(n * 37),
                1 => serde_json::json!(format!("value-{n:02}")),
                _ => serde_json::json!(n % 2 == 0),
            };
            (format!("v{n:02}"), value)
        })
        .collect();
    serde_json::json!({ "v": variables }).to_string()
}
