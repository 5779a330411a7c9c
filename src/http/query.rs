//! Numbers in a query string, read alike by every route: message ids and positions, counts,
//! and `limit`, whose values past what 64 bits hold are clamped like any large one.

use std::collections::HashMap;

use crate::app::error::AppError;

/// A query string's parameters.
pub type Query = HashMap<String, String>;

/// `v` as a whole number (a sign allowed); one too large for 64 bits is the largest.
/// `None` when it is not a whole number.
fn whole(v: &str) -> Option<i64> {
    match v.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            let digits = v.strip_prefix('+').unwrap_or(v);
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(i64::MAX)
        }
    }
}

/// `limit`, if given. Text that is not a whole number reads as 0, which the route's range
/// check refuses with the same sentence as any number below 1.
pub fn limit(q: &Query) -> Option<i64> {
    q.get("limit").map(|v| whole(v).unwrap_or(0))
}

/// A message id or position in the query (`before`, `after`, `around`), if given.
pub fn message_id(q: &Query, key: &str) -> Result<Option<i64>, AppError> {
    exact(q, key, "must be a message id (a whole number ≥ 0)")
}

/// A whole number ≥ 0 in the query, if given.
pub fn number(q: &Query, key: &str) -> Result<Option<i64>, AppError> {
    exact(q, key, "must be a whole number ≥ 0")
}

/// A whole number ≥ 0 in the query, if given, one past 64 bits read as the largest (a count
/// the route clamps).
pub fn count(q: &Query, key: &str) -> Result<Option<i64>, AppError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => match whole(v) {
            Some(n) if n >= 0 => Ok(Some(n)),
            _ => Err(refused(key, "must be a whole number ≥ 0")),
        },
    }
}

fn exact(q: &Query, key: &str, rule: &str) -> Result<Option<i64>, AppError> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(refused(key, rule)),
        },
    }
}

fn refused(key: &str, rule: &str) -> AppError {
    AppError::bad_request(format!("`{key}` {rule}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Query {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limits_clamp_past_64_bits_and_read_text_as_zero() {
        assert_eq!(limit(&q(&[])), None);
        assert_eq!(limit(&q(&[("limit", "50")])), Some(50));
        assert_eq!(limit(&q(&[("limit", "+7")])), Some(7));
        assert_eq!(limit(&q(&[("limit", "-3")])), Some(-3));
        let huge = "100000000000000000000";
        assert_eq!(limit(&q(&[("limit", huge)])), Some(i64::MAX));
        assert_eq!(limit(&q(&[("limit", "ten")])), Some(0));
        assert_eq!(limit(&q(&[("limit", "")])), Some(0));
        assert_eq!(limit(&q(&[("limit", "-100000000000000000000")])), Some(0));
    }

    #[test]
    fn ids_and_numbers_are_whole_and_not_negative() {
        assert_eq!(
            message_id(&q(&[("before", "12")]), "before").unwrap(),
            Some(12)
        );
        assert!(message_id(&q(&[("before", "-1")]), "before").is_err());
        assert!(message_id(&q(&[("before", "1e3")]), "before").is_err());
        let huge = "100000000000000000000";
        assert!(number(&q(&[("offset", huge)]), "offset").is_err());
        assert_eq!(
            count(&q(&[("limit", huge)]), "limit").unwrap(),
            Some(i64::MAX)
        );
        assert!(count(&q(&[("limit", "x")]), "limit").is_err());
        assert!(count(&q(&[("limit", "-2")]), "limit").is_err());
        assert_eq!(number(&q(&[]), "offset").unwrap(), None);
    }
}
