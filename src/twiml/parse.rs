//! Reading TwiML back, as a provider does: the verbs of a `<Response>` as a plain element tree.
//! For `switchboard call` (which plays the provider) and for tests; the server only writes.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One element: a verb, or a noun inside one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    /// The text directly inside, unescaped, without leading and trailing white space.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not XML: {0}")]
    Xml(String),
    #[error("the root element is <{0}>, not <Response>")]
    Root(String),
    #[error("the document ends inside <{0}>")]
    Unclosed(String),
    #[error("no <Response> element")]
    Empty,
}

/// The verbs of the `<Response>` in `xml`.
pub fn parse(xml: &str) -> Result<Vec<Element>, ParseError> {
    let mut reader = Reader::from_str(xml);
    let mut open: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|err| ParseError::Xml(err.to_string()))?;
        match event {
            Event::Start(start) => open.push(element(&start)?),
            Event::Empty(start) => {
                let element = element(&start)?;
                match open.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(check_root(element, &root)?),
                }
            }
            Event::Text(text) => {
                if let Some(current) = open.last_mut() {
                    let text = text.decode().map_err(|err| ParseError::Xml(err.to_string()))?;
                    current.text.push_str(&text);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(current) = open.last_mut() {
                    let name = reference.decode().map_err(|err| ParseError::Xml(err.to_string()))?;
                    let entity = format!("&{name};");
                    let text = quick_xml::escape::unescape(&entity)
                        .map_err(|err| ParseError::Xml(err.to_string()))?;
                    current.text.push_str(&text);
                }
            }
            Event::End(_) => {
                let mut done =
                    open.pop().ok_or_else(|| ParseError::Xml("an end tag without a start".into()))?;
                done.text = done.text.trim().to_owned();
                match open.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(check_root(done, &root)?),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(unclosed) = open.pop() {
        return Err(ParseError::Unclosed(unclosed.name));
    }
    root.map(|root| root.children).ok_or(ParseError::Empty)
}

fn check_root(element: Element, previous: &Option<Element>) -> Result<Element, ParseError> {
    if element.name != "Response" || previous.is_some() {
        return Err(ParseError::Root(element.name));
    }
    Ok(element)
}

fn element(start: &BytesStart<'_>) -> Result<Element, ParseError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|err| ParseError::Xml(err.to_string()))?;
        let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
        let value = attribute.unescape_value().map_err(|err| ParseError::Xml(err.to_string()))?.into_owned();
        attributes.push((key, value));
    }
    Ok(Element { name, attributes, ..Element::default() })
}
