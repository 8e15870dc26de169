//! Cedar's extension values (`datetime`, `decimal`, `duration`, `ip`) as
//! expressions for a context or an entity's attributes.
//!
//! cedar-policy 4.14's `RestrictedExpression::new_datetime` and its siblings
//! parse the constructor's name with Cedar's full parser on every call
//! (about 50 000 instructions each, measured with callgrind: more than half
//! of a new decision's own cost). The expression for a text is the same
//! every time, so each thread keeps the ones it built lately: `now` changes
//! once a second, and a caller's address, an amount or an expiry repeat.
//! Whatever is kept, the expression is the one Cedar would build.

use cedar_policy::RestrictedExpression;
use std::cell::RefCell;
use std::collections::HashMap;

/// The extension types a context field or an attribute can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    Datetime,
    Decimal,
    Duration,
    Ip,
}

/// Texts kept per extension and thread; past it a thread starts again (a
/// caller sending ever new amounts costs what every call cost before).
const KEPT: usize = 128;

thread_local! {
    /// One map per [`Extension`], in its order.
    static BUILT: RefCell<[HashMap<Box<str>, RestrictedExpression>; 4]> = RefCell::default();
}

impl Extension {
    /// The expression constructing this extension's value from `text`
    /// (Cedar checks the text when it evaluates it).
    pub fn value(self, text: &str) -> RestrictedExpression {
        BUILT.with(|built| {
            let mut built = built.borrow_mut();
            let kept = &mut built[self as usize];
            if let Some(expr) = kept.get(text) {
                return expr.clone();
            }
            let expr = self.build(text);
            if kept.len() >= KEPT {
                kept.clear();
            }
            kept.insert(text.into(), expr.clone());
            expr
        })
    }

    fn build(self, text: &str) -> RestrictedExpression {
        match self {
            Extension::Datetime => RestrictedExpression::new_datetime(text),
            Extension::Decimal => RestrictedExpression::new_decimal(text),
            Extension::Duration => RestrictedExpression::new_duration(text),
            Extension::Ip => RestrictedExpression::new_ip(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_value_is_the_one_cedar_builds() {
        for (ext, text) in [
            (Extension::Datetime, "2026-12-07T02:00:00Z"),
            (Extension::Decimal, "12.50"),
            (Extension::Duration, "1h30m"),
            (Extension::Ip, "10.1.2.3"),
        ] {
            let first = ext.value(text);
            assert_eq!(first, ext.build(text));
            assert_eq!(ext.value(text), first, "{ext:?} {text} kept");
        }
        // Kinds do not share texts.
        assert_ne!(
            Extension::Decimal.value("1.0"),
            Extension::Duration.value("1.0")
        );
        // Past the bound a thread starts again and still answers.
        for i in 0..(KEPT * 2) {
            let text = format!("{i}.5");
            assert_eq!(
                Extension::Decimal.value(&text),
                Extension::Decimal.build(&text)
            );
        }
        BUILT.with(|b| assert!(b.borrow()[Extension::Decimal as usize].len() <= KEPT));
    }
}
