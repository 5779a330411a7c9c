//! Finding people by name (the quick switcher's "Person" entries, and anything else that
//! offers usernames as one types).

use std::collections::HashSet;

use crate::app::error::AppError;
use crate::app::App;
use crate::domain::Username;

/// Most people one lookup returns.
pub const MAX_PEOPLE: i64 = 20;

/// A person found by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The name as its owner chose it.
    pub username: String,
    /// Has at least one open connection.
    pub online: bool,
}

/// The enabled accounts whose name starts with `prefix` (ignoring case; an empty prefix
/// matches everyone), in name order, at most `limit` (1–[`MAX_PEOPLE`]). A prefix with a
/// character no username has, or longer than a username can be, is `bad_request`.
pub async fn find(state: &App, prefix: &str, limit: i64) -> Result<Vec<Person>, AppError> {
    let key = prefix_key(prefix)?;
    if !(1..=MAX_PEOPLE).contains(&limit) {
        return Err(AppError::bad_request(format!(
            "`limit` must be a whole number from 1 to {MAX_PEOPLE}."
        )));
    }
    let rows = state
        .db
        .read_tx(move |tx| tx.users_by_prefix(&key, limit))
        .await?;
    let online = state.hub.online();
    let online: HashSet<&str> = online.iter().map(|n| &**n).collect();
    Ok(rows
        .into_iter()
        .map(|(_, username)| Person {
            online: online.contains(username.as_str()),
            username,
        })
        .collect())
}

/// The case-folded prefix, checked: username characters only, at most a username long.
fn prefix_key(prefix: &str) -> Result<String, AppError> {
    if prefix.is_empty() {
        return Ok(String::new());
    }
    Username::parse(prefix).map(|u| u.key()).map_err(|_| {
        AppError::bad_request(
            "`q` must be the start of a username: at most 32 letters, digits, '_', '.' or '-'.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_case_folded_and_checked() {
        assert_eq!(prefix_key("").unwrap(), "");
        assert_eq!(prefix_key("Al").unwrap(), "al");
        assert!(prefix_key("a b").is_err());
        assert!(prefix_key("%").is_err());
        assert!(prefix_key(&"a".repeat(33)).is_err());
    }
}
