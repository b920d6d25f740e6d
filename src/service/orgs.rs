//! Orgs and their policies: the operator's CRUD, and how a request names an
//! org (`org_<ULID>` id or slug).

use serde::Deserialize;

use super::{RequestContext, ServiceError, ServiceResult, Services};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock::UnixSeconds;
use crate::domain::org::{slug_is_valid, DEFAULT_ORG_SLUG};
use crate::domain::{MfaPolicy, Org, OrgId, PasswordPolicy, RegistrationMode};
use crate::store::Queries;

/// Finds an org by id or slug; `None` means the default org.
pub fn resolve(txn: &impl Queries, reference: Option<&str>) -> ServiceResult<Option<Org>> {
    let reference = reference
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_ORG_SLUG);
    Ok(match OrgId::parse(reference) {
        Some(id) => txn.org(&id)?,
        None => txn.org_by_slug(reference)?,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub registration: RegistrationMode,
    #[serde(default)]
    pub mfa_policy: MfaPolicy,
    #[serde(default)]
    pub password_policy: PasswordPolicy,
    #[serde(default)]
    pub max_sessions_per_user: Option<u32>,
    #[serde(default)]
    pub allow_passwordless: bool,
}

/// A partial update; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgChanges {
    pub slug: Option<String>,
    pub name: Option<String>,
    pub registration: Option<RegistrationMode>,
    pub mfa_policy: Option<MfaPolicy>,
    pub password_policy: Option<PasswordPolicy>,
    /// `null` clears the limit.
    #[serde(default, deserialize_with = "double_option")]
    pub max_sessions_per_user: Option<Option<u32>>,
    pub allow_passwordless: Option<bool>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(deserializer).map(Some)
}

fn check_name(name: &str) -> ServiceResult<String> {
    match crate::domain::check_name(name, 200) {
        Ok("") => Err(ServiceError::field("name", "is required")),
        Ok(name) => Ok(name.to_owned()),
        Err(problem) => Err(ServiceError::field("name", problem.to_string())),
    }
}

fn check_slug(slug: &str) -> ServiceResult<String> {
    if !slug_is_valid(slug) {
        return Err(ServiceError::field(
            "slug",
            "must be 1 to 63 of a-z, 0-9, '-' or '_', not starting with '-' or 'org_'",
        ));
    }
    Ok(slug.to_owned())
}

fn check_policy(policy: &PasswordPolicy) -> ServiceResult<()> {
    policy
        .validate()
        .map_err(|message| ServiceError::field("password_policy", message))
}

impl Services {
    pub async fn create_org(&self, new: NewOrg, context: &RequestContext) -> ServiceResult<Org> {
        let slug = check_slug(&new.slug)?;
        let name = check_name(&new.name)?;
        check_policy(&new.password_policy)?;
        let now = self.clock.now();
        let org = Org {
            id: OrgId::random(),
            slug,
            name,
            registration: new.registration,
            mfa_policy: new.mfa_policy,
            password_policy: new.password_policy,
            max_sessions_per_user: new.max_sessions_per_user,
            allow_passwordless: new.allow_passwordless,
            created_at: now,
        };
        let origin = context.origin();
        self.store_write(move |txn| {
            if txn.org_by_slug(&org.slug)?.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "slug '{}' is taken",
                    org.slug
                )));
            }
            txn.put_org(&org)?;
            txn.audit(AuditRecord::new(AuditKind::OrgCreated, now, &origin).org(&org.id))?;
            Ok(org)
        })
        .await
    }

    pub async fn update_org(
        &self,
        reference: String,
        changes: OrgChanges,
        context: &RequestContext,
    ) -> ServiceResult<Org> {
        let slug = changes.slug.as_deref().map(check_slug).transpose()?;
        let name = changes.name.as_deref().map(check_name).transpose()?;
        if let Some(policy) = &changes.password_policy {
            check_policy(policy)?;
        }
        let now = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let mut org = resolve(txn, Some(&reference))?.ok_or(ServiceError::NotFound("org"))?;
            if let Some(slug) = slug {
                if slug != org.slug {
                    if org.slug == DEFAULT_ORG_SLUG {
                        return Err(ServiceError::field(
                            "slug",
                            "the default org keeps its slug",
                        ));
                    }
                    if txn.org_by_slug(&slug)?.is_some() {
                        return Err(ServiceError::Conflict(format!("slug '{slug}' is taken")));
                    }
                    org.slug = slug;
                }
            }
            if let Some(name) = name {
                org.name = name;
            }
            if let Some(registration) = changes.registration {
                org.registration = registration;
            }
            if let Some(mfa_policy) = changes.mfa_policy {
                org.mfa_policy = mfa_policy;
            }
            if let Some(policy) = changes.password_policy {
                org.password_policy = policy;
            }
            if let Some(limit) = changes.max_sessions_per_user {
                org.max_sessions_per_user = limit;
            }
            if let Some(allow) = changes.allow_passwordless {
                org.allow_passwordless = allow;
            }
            txn.put_org(&org)?;
            txn.audit(AuditRecord::new(AuditKind::OrgUpdated, now, &origin).org(&org.id))?;
            Ok(org)
        })
        .await
    }

    pub async fn get_org(&self, reference: String) -> ServiceResult<Org> {
        self.store_read(move |txn| {
            resolve(txn, Some(&reference))?.ok_or(ServiceError::NotFound("org"))
        })
        .await
    }

    pub async fn list_orgs(&self, cursor: Option<String>, limit: usize) -> ServiceResult<Vec<Org>> {
        self.store_read(move |txn| Ok(txn.orgs(cursor.as_deref(), limit)?))
            .await
    }

    /// Deletes an org without members; the default org stays.
    pub async fn delete_org(
        &self,
        reference: String,
        context: &RequestContext,
    ) -> ServiceResult<()> {
        let now: UnixSeconds = self.clock.now();
        let origin = context.origin();
        self.store_write(move |txn| {
            let org = resolve(txn, Some(&reference))?.ok_or(ServiceError::NotFound("org"))?;
            if org.slug == DEFAULT_ORG_SLUG {
                return Err(ServiceError::Conflict(
                    "the default org cannot be deleted".into(),
                ));
            }
            if !txn.users(Some(&org.id), None, 1)?.is_empty() {
                return Err(ServiceError::Conflict("the org still has members".into()));
            }
            txn.delete_org(&org)?;
            txn.audit(AuditRecord::new(AuditKind::OrgDeleted, now, &origin).org(&org.id))?;
            Ok(())
        })
        .await
    }
}
