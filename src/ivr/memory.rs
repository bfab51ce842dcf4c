//! What a call remembers as it walks its flow: variables (collected digits, lookup answers,
//! `set`) and the task settings `set` gave. It travels with the call (in the signed action URL
//! of a call, in the stored conversation of a text), so it is bounded: [`MAX_CARRIED`] bytes of
//! JSON. Also `{{name}}` templates, and reading a lookup's answer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most bytes of JSON a call's memory may take: at most about 3 KB percent-encoded, so
/// that an action URL stays a few KB long, well within what providers and proxies accept.
/// A change that would take it past this is not made: a lookup goes to its `on_error`, a `set`
/// is skipped, a collect counts an invalid answer.
pub const MAX_CARRIED: usize = 1_024;
/// The most bytes of a lookup's answer read; a longer answer is a failed lookup.
pub const LOOKUP_ANSWER_LIMIT: usize = 64 * 1024;

/// A call's variables and the task settings its flow set. Short field names: it travels in
/// URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "Map::is_empty", rename = "v")]
    pub variables: Map<String, Value>,
    /// Task attributes for the task the flow creates.
    #[serde(default, skip_serializing_if = "Map::is_empty", rename = "a")]
    pub attributes: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "p")]
    pub priority: Option<i64>,
    /// Skills added to the route's.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "s")]
    pub skills: Vec<String>,
}

impl Memory {
    pub fn is_empty(&self) -> bool {
        *self == Memory::default()
    }

    /// The memory as compact JSON; empty when there is nothing to remember.
    pub fn encode(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let mut text = Vec::with_capacity(self.encoded_len());
        match serde_json::to_writer(&mut text, self) {
            Ok(()) => String::from_utf8(text).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The memory [`Memory::encode`] wrote; anything else (an empty text) is an empty memory.
    /// The action URL is signed, so only Switchboard's own encodings arrive here.
    pub fn decode(text: &str) -> Memory {
        Memory::decode_bytes(text.as_bytes())
    }

    /// [`Memory::decode`] of the text's bytes (checked as UTF-8 while read).
    pub fn decode_bytes(text: &[u8]) -> Memory {
        serde_json::from_slice(text).unwrap_or_default()
    }

    /// Whether it is within [`MAX_CARRIED`] (measured without writing the text).
    pub fn fits(&self) -> bool {
        self.encoded_len() <= MAX_CARRIED
    }

    /// The length of [`Memory::encode`]'s text.
    pub fn encoded_len(&self) -> usize {
        let mut parts = Vec::with_capacity(4);
        if !self.variables.is_empty() {
            parts.push(4 + object_len(self.variables.iter()));
        }
        if !self.attributes.is_empty() {
            parts.push(4 + object_len(self.attributes.iter()));
        }
        if let Some(priority) = self.priority {
            parts.push(4 + integer_len(priority.unsigned_abs(), priority < 0));
        }
        if !self.skills.is_empty() {
            let skills: usize = self.skills.iter().map(|skill| string_len(skill) + 1).sum();
            parts.push(4 + 1 + skills);
        }
        match parts.len() {
            0 => 0,
            count => 1 + parts.iter().sum::<usize>() + count,
        }
    }

    /// The value at `path` (`name` or `name.field`) among the variables.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut value = self.variables.get(parts.next()?)?;
        for part in parts {
            value = value.get(part)?;
        }
        Some(value)
    }
}

/// The length of `value` as serde_json writes it compactly.
fn json_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => integer_len(unsigned, false),
            (None, Some(signed)) => integer_len(signed.unsigned_abs(), true),
            // Floats are rare in a call's variables: written to be measured.
            _ => number.to_string().len(),
        },
        Value::String(text) => string_len(text),
        // `[` then each item and its comma (the last comma's place is the `]`).
        Value::Array(items) => 1 + items.iter().map(|item| json_len(item) + 1).sum::<usize>().max(1),
        Value::Object(fields) => object_len(fields.iter()),
    }
}

/// `{` then each `"name":value` and its comma (the last comma's place is the `}`).
fn object_len<'a>(fields: impl Iterator<Item = (&'a String, &'a Value)>) -> usize {
    1 + fields.map(|(name, value)| string_len(name) + 1 + json_len(value) + 1).sum::<usize>().max(1)
}

fn integer_len(magnitude: u64, negative: bool) -> usize {
    magnitude.checked_ilog10().map_or(1, |digits| digits as usize + 1) + usize::from(negative)
}

/// A JSON string's length with its quotes and escapes (`\"`, `\\`, `\n`..., `\u00XX`).
fn string_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|byte| match byte {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// A value as it reads in a prompt: text as is, numbers and booleans written out, lists joined
/// with commas, nothing for null.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// `template` with each `{{name}}` replaced by `value(name)` (nothing when it has none).
pub fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else { break };
        out.push_str(&rest[..open]);
        out.push_str(&value(rest[open + 2..open + 2 + close].trim()).unwrap_or_default());
        rest = &rest[open + 2 + close + 2..];
    }
    out.push_str(rest);
    out
}

/// The names a template reads, or why it is not one: an unclosed `{{`, or a name that is not
/// letters, digits, `_` and dots.
pub fn template_names(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            return Err(format!("{template:?} opens {{{{ without closing it"));
        };
        let name = rest[open + 2..open + 2 + close].trim();
        if !is_name(name) {
            return Err(format!("{{{{{name}}}}} is not a variable name (letters, digits, _ and dots)"));
        }
        names.push(name);
        rest = &rest[open + 2 + close + 2..];
    }
    Ok(names)
}

/// A variable's name: letters, digits and `_`, dots between fields, not starting with a digit.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The fields of a lookup's answer: a JSON object, of which the fields named in `keep` (all
/// when empty) are kept. A refusal says why, in a sentence for the `lookup_error` variable.
pub fn lookup_answer(body: &str, keep: &[String]) -> Result<Map<String, Value>, String> {
    if body.len() > LOOKUP_ANSWER_LIMIT {
        return Err(format!("the answer is longer than {LOOKUP_ANSWER_LIMIT} bytes"));
    }
    // serde_json refuses nesting deeper than 128 levels, so deep answers cannot exhaust the stack.
    let value: Value = serde_json::from_str(body).map_err(|err| format!("the answer is not JSON: {err}"))?;
    let Value::Object(fields) = value else {
        return Err("the answer is not a JSON object".to_owned());
    };
    Ok(fields.into_iter().filter(|(name, _)| keep.is_empty() || keep.contains(name)).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check_render(template: &str, expected: &str) {
        let variables = json!({"name": "Ada", "n": 3, "tags": ["a", "b"], "customer": {"tier": "gold"}});
        let variables = variables.as_object().unwrap().clone();
        let memory = Memory { variables, ..Memory::default() };
        assert_eq!(render(template, |name| memory.get(name).map(as_text)), expected, "{template}");
    }

    #[test]
    fn templates_name_variables() {
        check_render("Hello {{name}}.", "Hello Ada.");
        check_render("{{ name }}{{n}}", "Ada3");
        check_render("{{customer.tier}} {{tags}}", "gold a, b");
        check_render("{{missing}}!", "!");
        check_render("{{unclosed", "{{unclosed");
        check_render("<Say>{{name}}</Say>", "<Say>Ada</Say>");
        assert_eq!(template_names("a {{x}} b {{y.z}}"), Ok(vec!["x", "y.z"]));
        assert!(template_names("a {{x").is_err());
        assert!(template_names("a {{1x}}").is_err());
        assert!(template_names("a {{x y}}").is_err());
    }

    fn check_answer(body: &str, keep: &[&str], expected: &str) {
        let keep: Vec<String> = keep.iter().map(|name| name.to_string()).collect();
        let actual = match lookup_answer(body, &keep) {
            Ok(fields) => Value::Object(fields).to_string(),
            Err(reason) => format!("error: {reason}"),
        };
        assert!(actual.starts_with(expected), "{body:.40}: {actual}");
    }

    #[test]
    fn a_lookup_answer_is_a_json_object_bounded_in_size_and_depth() {
        check_answer(
            r#"{"tier": "gold", "n": 2, "x": {"y": 1}}"#,
            &[],
            r#"{"tier":"gold","n":2,"x":{"y":1}}"#,
        );
        check_answer(r#"{"tier": "gold", "n": 2}"#, &["tier"], r#"{"tier":"gold"}"#);
        check_answer("[1, 2]", &[], "error: the answer is not a JSON object");
        check_answer("<html>", &[], "error: the answer is not JSON");
        check_answer("", &[], "error: the answer is not JSON");
        let deep = "[".repeat(10_000);
        check_answer(&format!("{{\"a\": {deep}}}"), &[], "error: the answer is not JSON: recursion limit");
        let long = format!("{{\"a\": \"{}\"}}", "x".repeat(LOOKUP_ANSWER_LIMIT));
        check_answer(&long, &[], "error: the answer is longer than 65536 bytes");
    }

    #[test]
    fn memory_travels_as_short_json_and_knows_its_bound() {
        let mut memory = Memory::default();
        assert_eq!(memory.encode(), "");
        assert_eq!(Memory::decode(""), memory);
        memory.variables.insert("account".into(), json!("12345678"));
        memory.priority = Some(10);
        assert_eq!(memory.encode(), r#"{"v":{"account":"12345678"},"p":10}"#);
        assert_eq!(Memory::decode(&memory.encode()), memory);
        assert!(memory.fits());
        memory.variables.insert("big".into(), json!("x".repeat(MAX_CARRIED)));
        assert!(!memory.fits());
    }

    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[\"\\\\\n\t\u{0}-\u{1f}a-z]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The length a memory is measured at is the length of its text.
        #[test]
        fn the_measured_length_is_the_written_length(
            variables in prop::collection::btree_map(any::<String>(), json_value(), 0..5),
            attributes in prop::collection::btree_map("[a-z\"]{1,4}", json_value(), 0..3),
            priority in prop::option::of(any::<i64>()),
            skills in prop::collection::vec(any::<String>(), 0..3),
        ) {
            let memory = Memory {
                variables: variables.into_iter().collect(),
                attributes: attributes.into_iter().collect(),
                priority,
                skills,
            };
            prop_assert_eq!(memory.encoded_len(), memory.encode().len(), "{}", memory.encode());
        }
    }
}
