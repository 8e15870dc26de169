//! Answering a list: the store runs it under the assertion's scope
//! ([`crate::store::domain::Listed`]); when the gateway asked for the
//! candidates to decide one by one, they are the answer.

/// Unwraps a list in a handler: `(total, items)` of the page, or returns the
/// candidates the gateway asked for.
macro_rules! page_or_answer {
    ($listed:expr) => {
        match $listed {
            $crate::store::domain::Listed::Page(page) => (page.total, page.items),
            $crate::store::domain::Listed::Candidates(candidates) => {
                return Ok(axum::response::IntoResponse::into_response(axum::Json(
                    $crate::filter::Candidates { candidates },
                )))
            }
        }
    };
}
pub(super) use page_or_answer;
