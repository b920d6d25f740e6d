//! Response bodies several handlers share: the one list envelope
//! ([`Page`]) and the small answers that are a single fact. Every other
//! handler answers with a service type; no handler builds JSON by hand.

use serde::Serialize;

/// Every list: `{"items":[…], "next_cursor": "…" | null}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A list that is always whole (no paging behind it).
    pub fn whole(items: Vec<T>) -> Self {
        Self {
            items,
            next_cursor: None,
        }
    }

    /// A page of at most `limit`: when it is full, the last item's cursor
    /// fetches the next.
    pub fn of(items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Self {
        let next_cursor = (items.len() == limit)
            .then(|| items.last().map(&cursor_of))
            .flatten();
        Self { items, next_cursor }
    }

    /// A page whose next cursor the service worked out.
    pub fn with_cursor(items: Vec<T>, next_cursor: Option<String>) -> Self {
        Self { items, next_cursor }
    }
}

/// `{"revoked": N}`: how many sessions ended.
#[derive(Debug, Serialize)]
pub struct Revoked {
    pub revoked: usize,
}

/// `{"recovery_codes": […]}`: shown this once.
#[derive(Debug, Serialize)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `{"status": …}` of `/healthz` and of a sign-up awaiting approval.
#[derive(Debug, Serialize)]
pub struct Status {
    pub status: &'static str,
}

/// The control-plane login's answer.
#[derive(Debug, Serialize)]
pub struct SessionToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// `{"redirect": URL}`: where a UI page sends the browser next (after
/// consent, or after signing out for an app).
#[derive(Debug, Serialize)]
pub struct Redirect {
    pub redirect: String,
}
