//! Turns expression text into tokens, each with its byte span.
//!
//! The lexer owns the decisions that depend on characters rather than structure: quotes (single
//! or double, no escapes, as in Twilio's documentation), numbers with leading zeros (`0800`),
//! the operator aliases `=`, `>-` and `<-`, and the rejection of hyphenated names, which TaskRouter
//! cannot reference.

use super::ast::{CmpOp, Number};
use super::error::{ErrorKind, ExprError};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'s> {
    /// A name or keyword; keywords are recognised by the parser, case-insensitively.
    Word(&'s str),
    Str(&'s str),
    Number(Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Cmp(CmpOp),
    AndAnd,
    OrOr,
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token<'s> {
    pub(crate) tok: Tok<'s>,
    /// Byte offsets into the source: `source[start..end]` is the token's text.
    pub(crate) start: usize,
    pub(crate) end: usize,
}

pub(crate) fn tokenize(source: &str) -> Result<Vec<Token<'_>>, ExprError> {
    let bytes = source.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let byte = bytes[pos];
        let (tok, end) = match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {
                pos += 1;
                continue;
            }
            b'(' => (Tok::LParen, pos + 1),
            b')' => (Tok::RParen, pos + 1),
            b'[' => (Tok::LBracket, pos + 1),
            b']' => (Tok::RBracket, pos + 1),
            b',' => (Tok::Comma, pos + 1),
            b'.' => (Tok::Dot, pos + 1),
            b'"' | b'\'' => lex_string(source, pos)?,
            b'=' if peek(bytes, pos + 1) == Some(b'=') => (Tok::Cmp(CmpOp::Eq), pos + 2),
            b'=' => (Tok::Cmp(CmpOp::Eq), pos + 1),
            b'!' if peek(bytes, pos + 1) == Some(b'=') => (Tok::Cmp(CmpOp::Ne), pos + 2),
            b'>' if peek(bytes, pos + 1) == Some(b'=') => (Tok::Cmp(CmpOp::Ge), pos + 2),
            b'>' if peek(bytes, pos + 1) == Some(b'-') => (Tok::Cmp(CmpOp::Has), pos + 2),
            b'>' => (Tok::Cmp(CmpOp::Gt), pos + 1),
            b'<' if peek(bytes, pos + 1) == Some(b'=') => (Tok::Cmp(CmpOp::Le), pos + 2),
            b'<' if peek(bytes, pos + 1) == Some(b'-') => (Tok::Cmp(CmpOp::In), pos + 2),
            b'<' => (Tok::Cmp(CmpOp::Lt), pos + 1),
            b'&' if peek(bytes, pos + 1) == Some(b'&') => (Tok::AndAnd, pos + 2),
            b'|' if peek(bytes, pos + 1) == Some(b'|') => (Tok::OrOr, pos + 2),
            b'0'..=b'9' => lex_number(source, pos)?,
            b'-' if peek(bytes, pos + 1).is_some_and(|b| b.is_ascii_digit()) => lex_number(source, pos)?,
            b if is_name_start(b) => lex_word(source, pos)?,
            _ => return Err(unexpected_char(source, pos)),
        };
        tokens.push(Token { tok, start, end });
        pos = end;
    }
    tokens.push(Token { tok: Tok::Eof, start: source.len(), end: source.len() });
    Ok(tokens)
}

fn peek(bytes: &[u8], pos: usize) -> Option<u8> {
    bytes.get(pos).copied()
}

fn is_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_name_continue(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn lex_string(source: &str, start: usize) -> Result<(Tok<'_>, usize), ExprError> {
    let quote = source.as_bytes()[start];
    match source[start + 1..].find(quote as char) {
        Some(len) => {
            let end = start + 1 + len;
            Ok((Tok::Str(&source[start + 1..end]), end + 1))
        }
        None => Err(ExprError::new(ErrorKind::UnterminatedString { quote: quote as char }, source, start)),
    }
}

fn lex_number(source: &str, start: usize) -> Result<(Tok<'_>, usize), ExprError> {
    let bytes = source.as_bytes();
    let mut end = start;
    if bytes[end] == b'-' {
        end += 1;
    }
    while end < bytes.len() && (is_name_continue(bytes[end]) || bytes[end] == b'.') {
        end += 1;
    }
    let text = &source[start..end];
    match Number::parse(text) {
        Some(number) => Ok((Tok::Number(number), end)),
        None => Err(ExprError::new(ErrorKind::BadNumber { text: text.to_owned() }, source, start)),
    }
}

fn lex_word(source: &str, start: usize) -> Result<(Tok<'_>, usize), ExprError> {
    let bytes = source.as_bytes();
    let mut end = start;
    while end < bytes.len() && is_name_continue(bytes[end]) {
        end += 1;
    }
    if peek(bytes, end) == Some(b'-') && peek(bytes, end + 1).is_some_and(is_name_continue) {
        return Err(hyphenated_name(source, start, end));
    }
    Ok((Tok::Word(&source[start..end]), end))
}

/// Builds the error for `skill-level`, quoting the whole hyphenated name and pointing at the
/// first hyphen.
fn hyphenated_name(source: &str, start: usize, hyphen: usize) -> ExprError {
    let bytes = source.as_bytes();
    let mut end = hyphen;
    while end < bytes.len() && (is_name_continue(bytes[end]) || bytes[end] == b'-') {
        end += 1;
    }
    let name = source[start..end].to_owned();
    let suggestion = name.replace('-', "_");
    ExprError::new(ErrorKind::HyphenInName { name, suggestion }, source, hyphen)
}

fn unexpected_char(source: &str, pos: usize) -> ExprError {
    let found = source[pos..].chars().next().unwrap_or('\u{fffd}');
    let hint = match found {
        '‘' | '’' | '“' | '”' => ": typographic quotes are not string quotes, use ' or \"",
        '!' => ": write NOT for negation or != for inequality",
        '&' => ": write AND or &&",
        '|' => ": write OR or ||",
        '-' => ": arithmetic is not supported",
        c if c.is_alphabetic() => ": attribute names use ASCII letters, digits and `_`",
        _ => "",
    };
    ExprError::new(ErrorKind::UnexpectedChar { found, hint }, source, pos)
}
