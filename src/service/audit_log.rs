//! Reading the audit trail (filters and a cursor) and pruning it by age.

use super::{ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::domain::UserId;
pub use crate::store::AuditQuery;
use crate::store::Queries;

/// The most records one page returns.
pub const MAX_PAGE: usize = 500;

/// Parses a public type name (`user.login`) into its kind.
pub fn parse_kind(text: &str) -> Option<AuditKind> {
    AuditKind::ALL
        .iter()
        .copied()
        .find(|kind| kind.as_str() == text)
}

/// The `type` and `user` filters of an audit query, as given in a URL.
pub fn parse_filters(
    kind: Option<&str>,
    user: Option<&str>,
) -> ServiceResult<(Option<AuditKind>, Option<UserId>)> {
    let kind = kind
        .map(|text| {
            parse_kind(text).ok_or_else(|| ServiceError::field("type", "unknown event type"))
        })
        .transpose()?;
    let user = user
        .map(|text| {
            UserId::parse(text).ok_or_else(|| ServiceError::field("user", "must be a user id"))
        })
        .transpose()?;
    Ok((kind, user))
}

impl Services {
    /// One page, newest first, and the cursor of the next page if there may be one.
    pub async fn query_audit(
        &self,
        mut query: AuditQuery,
    ) -> ServiceResult<(Vec<AuditRecord>, Option<String>)> {
        query.limit = query.limit.clamp(1, MAX_PAGE);
        let limit = query.limit;
        let records = self.store_read(move |txn| Ok(txn.audit(&query)?)).await?;
        let next = (records.len() == limit)
            .then(|| records.last().map(|r| r.id.clone()))
            .flatten();
        Ok((records, next))
    }

    /// Deletes records older than `audit.retention`, in bounded batches so a
    /// large backlog does not hold the write lock for long.
    pub async fn prune_audit(&self) -> ServiceResult<usize> {
        let before = self.clock.now() - self.config().audit.retention.as_secs() as i64;
        let mut total = 0;
        loop {
            let removed = self
                .store_write(move |txn| Ok(txn.prune_audit(before, 1_000)?))
                .await?;
            total += removed;
            if removed < 1_000 {
                return Ok(total);
            }
        }
    }
}
