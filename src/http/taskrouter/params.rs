//! Request parameters as TaskRouter names them (`FriendlyName`, `Attributes`, `PageSize`...),
//! from a form body or a query string, with one error message per way a value can be wrong.
//! As an extractor, [`Params`] is the request's form body, read by `http::form`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde_json::Value;

use super::error::TwilioError;
use crate::http::form::{Form, decode};
use crate::routing::{Millis, Sid, SidKind, TaskOrder};

/// Twilio's page size when none is asked for, and the most it gives.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The parameters of one request, in the order given (a name may repeat).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

/// Which page of a list to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Paging {
    pub page: usize,
    pub page_size: usize,
    /// Where the page starts, when the request carries the `PageToken` of a `next_page_url`.
    pub token: Option<PageToken>,
}

/// Where the next page of a list starts: after the item at position `after`, in a list ordered
/// by position, `ascending` or not. Unlike a page number, it stays right while items are added
/// to or removed from the list between two pages (tasks are created and purged all the time),
/// so walking `next_page_url` neither skips nor repeats an item. Written `PA<after>` for an
/// ascending list and `PD<after>` for a descending one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageToken {
    pub ascending: bool,
    pub after: String,
}

impl PageToken {
    /// Whether the item at `position` comes after the token in the list.
    pub(crate) fn precedes(&self, position: &str) -> bool {
        if self.ascending { position > self.after.as_str() } else { position < self.after.as_str() }
    }

    fn parse(text: &str) -> Option<PageToken> {
        let (ascending, after) = match text.split_at_checked(2)? {
            ("PA", after) => (true, after),
            ("PD", after) => (false, after),
            _ => return None,
        };
        let position = |c: char| c.is_ascii_alphanumeric();
        (!after.is_empty() && after.chars().all(position))
            .then(|| PageToken { ascending, after: after.to_owned() })
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P{}{}", if self.ascending { 'A' } else { 'D' }, self.after)
    }
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string).
    pub(crate) fn parse(encoded: &[u8]) -> Result<Params, TwilioError> {
        decode(encoded).map(Params).map_err(TwilioError::from)
    }

    /// The last value given for `name` (Twilio's names are case-sensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Every value given for `name`, commas also separating values (`AssignmentStatus=pending,reserved`).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, TwilioError> {
        match self.get(name) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(TwilioError::invalid(format!("Missing required parameter {name} in the post body"))),
        }
    }

    /// A JSON object (`Attributes`); an empty value counts as absent.
    pub(crate) fn json_object(&self, name: &str) -> Result<Option<Value>, TwilioError> {
        let Some(text) = self.get(name).filter(|text| !text.trim().is_empty()) else {
            return Ok(None);
        };
        match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => Ok(Some(value)),
            Ok(_) => Err(TwilioError::invalid(format!("{name} must be a JSON object"))),
            Err(err) => Err(TwilioError::invalid(format!("{name} is not valid JSON: {err}"))),
        }
    }

    /// A whole number in `range`.
    pub(crate) fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, TwilioError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        match text.trim().parse::<i64>() {
            Ok(value) if range.contains(&value) => Ok(Some(value)),
            _ => Err(TwilioError::invalid(format!(
                "{name} must be a whole number from {} to {}, not {text:?}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// Refuses TaskRouter parameters Switchboard does not act on, rather than drop them silently
    /// (an application ported from Twilio would wait for what never comes, or read an
    /// unfiltered list as filtered); `instead` says what to do.
    pub(crate) fn refuse(&self, names: &[&str], instead: &str) -> Result<(), TwilioError> {
        match names.iter().find(|name| self.get(name).is_some()) {
            Some(name) => {
                Err(TwilioError::invalid(format!("{name} is not supported by Switchboard; {instead}")))
            }
            None => Ok(()),
        }
    }

    /// An ISO 8601 date and time (`StartDate`, `EndDate`), in milliseconds since the epoch.
    pub(crate) fn date_time(&self, name: &str) -> Result<Option<Millis>, TwilioError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        text.trim().parse::<jiff::Timestamp>().map(|at| Some(at.as_millisecond())).map_err(|_| {
            TwilioError::invalid(format!(
                "{name} must be an ISO 8601 date and time, like 2026-11-24T09:30:00Z"
            ))
        })
    }

    /// `true` / `false` in any case (Twilio's SDKs send `True` / `False` from Python).
    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, TwilioError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(TwilioError::invalid(format!("{name} must be true or false, not {text:?}"))),
        }
    }

    /// `FIFO` or `LIFO`, in any case (`TaskOrder`, `PrioritizeQueueOrder`).
    pub(crate) fn order(&self, name: &str) -> Result<Option<TaskOrder>, TwilioError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        match text.trim().to_ascii_uppercase().as_str() {
            "FIFO" => Ok(Some(TaskOrder::Fifo)),
            "LIFO" => Ok(Some(TaskOrder::Lifo)),
            _ => Err(TwilioError::invalid(format!("{name} must be FIFO or LIFO, not {text:?}"))),
        }
    }

    pub(crate) fn sid(&self, name: &str, kind: SidKind) -> Result<Option<Sid>, TwilioError> {
        let Some(text) = self.get(name).filter(|text| !text.is_empty()) else { return Ok(None) };
        Sid::parse(text.trim(), kind).map(Some).map_err(|err| TwilioError::invalid(format!("{name}: {err}")))
    }

    /// `Page` (from 0), `PageSize` (1 to 1,000, default 50) and `PageToken` (from a
    /// `next_page_url`).
    pub(crate) fn paging(&self) -> Result<Paging, TwilioError> {
        let page_size =
            self.integer("PageSize", 1..=MAX_PAGE_SIZE as i64)?.map_or(DEFAULT_PAGE_SIZE, |n| n as usize);
        let page = self.integer("Page", 0..=i64::from(u32::MAX))?.map_or(0, |n| n as usize);
        let token = match self.get("PageToken").filter(|token| !token.is_empty()) {
            Some(text) => Some(PageToken::parse(text).ok_or_else(|| {
                TwilioError::invalid(format!("PageToken: {text:?} is not a token from a next_page_url"))
            })?),
            None => None,
        };
        Ok(Paging { page, page_size, token })
    }

    /// The parameters to carry into the `meta` URLs of a list: every filter, not the paging.
    pub(crate) fn filters(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "Page" | "PageSize" | "PageToken"))
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    }
}

/// The form body, in Twilio's error shape when it is refused.
impl FromRequest for Params {
    type Error = TwilioError;
    type Future = Pin<Box<dyn Future<Output = Result<Params, TwilioError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = Form::from_request(request, payload);
        Box::pin(async move { form.await.map(|Form(pairs)| Params(pairs)).map_err(TwilioError::from) })
    }
}

/// What any bytes must do when they are read as the REST API's parameters: the check behind
/// the REST fuzz targets, shared by the proptest targets (`tests`) and cargo fuzz's
/// `rest_form` target (`crate::fuzzing`, `fuzz/`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzz {
    use actix_web::ResponseError;
    use actix_web::http::StatusCode;
    use proptest::prelude::*;

    use super::{MAX_PAGE_SIZE, Params, TwilioError};
    use crate::routing::SidKind;

    /// Any body or query string is read or refused with a 400 that says why; whatever was
    /// read, every accessor answers or refuses.
    pub(crate) fn check_encoded(encoded: &[u8]) -> Result<(), TestCaseError> {
        if let Some(params) = assert_refusal_names(Params::parse(encoded), "URL-encoded")? {
            for (name, _) in &params.0 {
                assert_reads(&params, name)?;
            }
            assert_paging(&params)?;
        }
        Ok(())
    }

    /// A refusal is a 400 whose message names the parameter.
    fn assert_refusal_names<T>(
        outcome: Result<T, TwilioError>,
        name: &str,
    ) -> Result<Option<T>, TestCaseError> {
        match outcome {
            Ok(value) => Ok(Some(value)),
            Err(err) => {
                prop_assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);
                prop_assert!(err.to_string().contains(name), "{} does not name {}", err, name);
                Ok(None)
            }
        }
    }

    /// Reads `name` every way the API reads a parameter; each value read keeps its promise.
    pub(crate) fn assert_reads(params: &Params, name: &str) -> Result<(), TestCaseError> {
        let given = params.get(name);
        let _ = params.all(name);
        assert_refusal_names(params.required(name), name)?;
        if let Some(Some(object)) = assert_refusal_names(params.json_object(name), name)? {
            prop_assert!(object.is_object());
        }
        if let Some(Some(number)) = assert_refusal_names(params.integer(name, -5..=1000), name)? {
            prop_assert!((-5..=1000).contains(&number));
            prop_assert_eq!(given.map(|text| text.trim().parse::<i64>()), Some(Ok(number)));
        }
        if let Some(Some(flag)) = assert_refusal_names(params.boolean(name), name)? {
            let word = given.unwrap_or_default().trim().to_ascii_lowercase();
            prop_assert_eq!(flag, ["true", "1", "yes"].contains(&word.as_str()));
        }
        for kind in [SidKind::Workflow, SidKind::Activity] {
            if let Some(Some(sid)) = assert_refusal_names(params.sid(name, kind), name)? {
                prop_assert!(sid.to_string().eq_ignore_ascii_case(given.unwrap_or_default().trim()));
            }
        }
        assert_refusal_names(params.date_time(name), name)?;
        assert_refusal_names(params.refuse(&[name], "fuzz"), name)?;
        Ok(())
    }

    pub(crate) fn assert_paging(params: &Params) -> Result<(), TestCaseError> {
        if let Some(paging) = assert_refusal_names(params.paging(), "Page")? {
            prop_assert!((1..=MAX_PAGE_SIZE).contains(&paging.page_size), "{:?}", paging);
            prop_assert!(paging.page <= u32::MAX as usize);
        }
        let filters = params.filters();
        prop_assert!(filters.iter().all(|(name, _)| !["Page", "PageSize", "PageToken"].contains(name)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::fuzz::{assert_paging, assert_reads, check_encoded};
    use super::*;
    use crate::fuzzing::{self, awkward_text};

    /// Parses `query`, runs `read` and compares its outcome (or the error message) with `expected`.
    fn check<T: std::fmt::Debug>(
        query: &str,
        read: impl Fn(&Params) -> Result<T, TwilioError>,
        expected: &str,
    ) {
        let outcome = Params::parse(query.as_bytes()).and_then(|params| read(&params));
        let actual = match outcome {
            Ok(value) => format!("{value:?}"),
            Err(err) => format!("error: {err}"),
        };
        assert_eq!(actual, expected, "{query}");
    }

    #[test]
    fn parameters() {
        check("FriendlyName=Alice", |p| Ok(p.get("FriendlyName").map(str::to_owned)), r#"Some("Alice")"#);
        check(
            "FriendlyName=a&FriendlyName=b",
            |p| Ok(p.get("FriendlyName").map(str::to_owned)),
            r#"Some("b")"#,
        );
        check("friendlyname=a", |p| Ok(p.get("FriendlyName").map(str::to_owned)), "None");
        check(
            "",
            |p| p.required("FriendlyName").map(str::to_owned),
            "error: Missing required parameter FriendlyName in the post body",
        );
        check(
            "A=pending,reserved&A=assigned",
            |p| Ok(p.all("A").join("|")),
            r#""pending|reserved|assigned""#,
        );
        check(
            "Attributes=%7B%22a%22%3A1%7D",
            |p| p.json_object("Attributes"),
            r#"Some(Object {"a": Number(1)})"#,
        );
        check("Attributes=", |p| p.json_object("Attributes"), "None");
        check(
            "Attributes=%5B1%5D",
            |p| p.json_object("Attributes"),
            "error: Attributes must be a JSON object",
        );
        check(
            "Attributes=%7B",
            |p| p.json_object("Attributes"),
            "error: Attributes is not valid JSON: EOF while parsing an object at line 1 column 1",
        );
        check("Priority=7", |p| p.integer("Priority", 0..=10), "Some(7)");
        check(
            "Priority=-1",
            |p| p.integer("Priority", 0..=10),
            r#"error: Priority must be a whole number from 0 to 10, not "-1""#,
        );
        check(
            "Priority=high",
            |p| p.integer("Priority", 0..=10),
            r#"error: Priority must be a whole number from 0 to 10, not "high""#,
        );
        check("Available=True", |p| p.boolean("Available"), "Some(true)");
        check("Available=0", |p| p.boolean("Available"), "Some(false)");
        check(
            "Available=maybe",
            |p| p.boolean("Available"),
            r#"error: Available must be true or false, not "maybe""#,
        );
        check(
            "WorkflowSid=WW123",
            |p| p.sid("WorkflowSid", SidKind::Workflow),
            "error: WorkflowSid: `WW123` is not a workflow SID (expected WW followed by 32 hex digits)",
        );
        check("", |p| p.paging(), "Paging { page: 0, page_size: 50, token: None }");
        check("Page=2&PageSize=10", |p| p.paging(), "Paging { page: 2, page_size: 10, token: None }");
        let token = |p: &Params| p.paging().map(|paging| paging.token.map(|token| token.to_string()));
        check("PageToken=PAWT0001", token, r#"Some("PAWT0001")"#);
        check("PageToken=PD00000000000000000042", token, r#"Some("PD00000000000000000042")"#);
        check("PageToken=", token, "None");
        check("PageToken=PA", token, r#"error: PageToken: "PA" is not a token from a next_page_url"#);
        check("PageToken=PB12", token, r#"error: PageToken: "PB12" is not a token from a next_page_url"#);
        check("PageToken=PA1%262", token, r#"error: PageToken: "PA1&2" is not a token from a next_page_url"#);
        check("PageToken=P%C3%A9", token, r#"error: PageToken: "Pé" is not a token from a next_page_url"#);
        check(
            "PageSize=1001",
            |p| p.paging(),
            r#"error: PageSize must be a whole number from 1 to 1000, not "1001""#,
        );
        let filters =
            |p: &Params| Ok(p.filters().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>());
        check("Page=1&PageSize=5&ActivityName=Available", filters, r#"["ActivityName=Available"]"#);
        check(
            "%ZZ",
            filters,
            "error: the parameters are not URL-encoded: `%` at byte 0 is not followed by two hex digits",
        );
    }

    /// Names the REST API reads.
    const NAMES: [&str; 14] = [
        "FriendlyName",
        "Attributes",
        "Priority",
        "Timeout",
        "Available",
        "WorkflowSid",
        "ActivitySid",
        "Page",
        "PageSize",
        "PageToken",
        "AssignmentStatus",
        "StartDate",
        "EndDate",
        "Minutes",
    ];

    /// Mostly the API's own names, sometimes any text.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![4 => prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned), 1 => awkward_text()]
    }

    /// Values as clients send them, and as hostile ones do: integers at and past the edges,
    /// booleans in any case, SIDs of the right and wrong kind, JSON objects, arrays, broken and
    /// deeply nested JSON, dates in and out of range.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => awkward_text(),
            2 => prop::sample::select(vec![
                "-0", "+5", " 7 ", "1000", "1001", "4294967295", "4294967296", "9223372036854775807",
                "9223372036854775808", "-9223372036854775808", "1e3", "0x10", "True", "FALSE", "yes",
                "maybe", "WW0123456789abcdef0123456789abcdef", "WW0123456789ABCDEF0123456789ABCDEF",
                " WA0123456789abcdef0123456789abcdef ", "WW123", "WQ0123456789abcdef0123456789abcdeg",
                r#"{"a":1}"#, "[1]", "{", r#"{"a":"\ud800"}"#, "2026-11-24T09:30:00Z", "2026-13-01T00:00:00Z",
                "-009999-01-01T00:00:00Z", "+009999-12-31T23:59:59Z", "pending,reserved,,assigned",
            ])
            .prop_map(str::to_owned),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => fuzzing::deeply_nested_json(),
        ]
    }

    proptest! {
        #![proptest_config(fuzzing::config(1_000))]

        /// Fuzz target (see `crate::fuzzing`): any body or query string is read or refused
        /// with a 400 that says why; whatever was read, every accessor answers or refuses.
        #[test]
        fn fuzz_rest_parameters_from_arbitrary_bytes(
            encoded in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                any::<String>().prop_map(String::into_bytes),
            ],
        ) {
            check_encoded(&encoded)?;
        }

        /// Fuzz target: parameters encoded as SDKs encode them read back as given (the last
        /// value of a repeated name counts), and every typed read keeps its promise.
        #[test]
        fn fuzz_rest_parameters_round_trip_and_typed_reads(
            pairs in prop::collection::vec((name(), value()), 0..10),
        ) {
            let encoded = serde_urlencoded::to_string(&pairs).expect("pairs of strings encode");
            let params = Params::parse(encoded.as_bytes()).expect("what serde_urlencoded writes, it reads");
            for (name, _) in &pairs {
                let last = pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
                prop_assert_eq!(params.get(name), last);
                assert_reads(&params, name)?;
            }
            for name in NAMES {
                assert_reads(&params, name)?;
            }
            assert_paging(&params)?;
        }
    }
}
