//! What any text must do when it is compiled as an expression: the check behind the
//! expression fuzz targets, shared by the proptest targets (`tests.rs`) and cargo fuzz's
//! `expression` target (`crate::fuzzing`, `fuzz/`).

use proptest::prelude::*;

use super::{Context, ExprError, Expression, Scope};

/// In every context, `source` compiles or is refused at a column of it; what compiles also
/// passes the context-free syntax check and behaves in each of `scopes`.
pub(crate) fn check_source(source: &str, scopes: &[Scope<'_>]) -> Result<(), TestCaseError> {
    for context in [Context::Queue, Context::Filter, Context::Target] {
        match Expression::parse(source, context) {
            Ok(expression) => {
                prop_assert!(Expression::check_syntax(source).is_ok(), "{:?}", source);
                for scope in scopes {
                    assert_compiled_behaves(&expression, scope)?;
                }
            }
            Err(err) => assert_error_points_into(source, &err)?,
        }
    }
    if let Err(err) = Expression::check_syntax(source) {
        assert_error_points_into(source, &err)?;
    }
    Ok(())
}

/// The error properties every refusal keeps: a column inside the expression (one past its
/// end for "the expression ends here"), quoted first in the message, with the caret under it.
pub(crate) fn assert_error_points_into(source: &str, err: &ExprError) -> Result<(), TestCaseError> {
    let column = err.column();
    prop_assert!((1..=source.chars().count() + 1).contains(&column), "column {} of {:?}", column, source);
    let message = err.to_string();
    prop_assert!(message.starts_with(&format!("column {column}: ")), "{}", message);
    let snippet = err.snippet();
    let caret_line = snippet.rsplit('\n').next().unwrap_or_default();
    prop_assert_eq!(caret_line.chars().count(), column, "{}", snippet);
    prop_assert!(caret_line.ends_with('^'));
    Ok(())
}

/// What a compiled expression must do in every scope: evaluate without panicking, agree with
/// its top-level clauses, agree with the text index the workflow builds from it, list its
/// path values, and print as text that compiles back to the same tree.
fn assert_compiled_behaves(expression: &Expression, scope: &Scope<'_>) -> Result<(), TestCaseError> {
    let holds = expression.evaluate(scope);
    let clauses = expression.clauses();
    prop_assert_eq!(holds, clauses.iter().all(|clause| clause.evaluate(scope)), "{}", expression);
    if let Some((text, path)) = expression.as_text_in_path()
        && let Some(texts) = path.candidate_texts(scope)
    {
        prop_assert_eq!(holds, texts.contains(&text), "{}", expression);
    }
    let _ = expression.path_values(scope);
    let reparsed = Expression::parse(&expression.to_string(), expression.context());
    prop_assert_eq!(reparsed.as_ref(), Ok(expression), "{}", expression);
    Ok(())
}
