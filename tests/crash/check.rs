//! After each restart: every acknowledged write not yet checked (and a
//! seeded sample of the older ones; all of them at the end) must be there
//! and behave, and every write that was in flight at the kill must have
//! happened whole or not at all.

use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use crate::ledger::{
    Account, Approval, Chain, ChainState, Pat, PatState, RegistrationInFlight, Writes,
};
use crate::load::{approval_id_of, Target};

/// Older records of each kind checked again after each kill.
const SAMPLE: usize = 12;
/// Checks in flight at once.
const CONCURRENT_CHECKS: usize = 6;

#[derive(Default, Debug)]
pub struct CheckReport {
    /// Acknowledged writes seen there and behaving for the first time.
    pub writes_checked: u64,
    /// Records checked (older ones again included).
    pub records_checked: u64,
    /// Unanswered writes whose outcome was seen whole, either way.
    pub in_flight_settled: u64,
    /// What was acknowledged and is not there, or misbehaves.
    pub lost: Vec<String>,
}

enum Job {
    Account(usize, Account),
    Chain(usize, Chain, bool),
    Pat(usize, Pat),
    Approval(usize, Approval),
    Registration(RegistrationInFlight),
    Enrollment(Account, String, u64),
}

enum Outcome {
    Account(usize, Account),
    Chain(usize, Chain),
    Pat(usize, Pat),
    Approval(usize, Approval),
    NewAccount(Account),
    /// An account whose TOTP confirmation went unanswered signed in: with
    /// its secret set if the confirmation took, without if not.
    EnrollmentSettled(Account),
    Nothing,
}

/// Checks the ledger against the running server. `full` checks every
/// record, not a sample of the older ones.
pub async fn check(target: &Target, rng: &mut StdRng, full: bool) -> CheckReport {
    let mut report = CheckReport::default();
    let approvals_page = match target
        .operator(reqwest::Method::GET, "/v1/approvals", None)
        .await
    {
        Some((200, page)) => page,
        other => {
            report.lost.push(format!("GET /v1/approvals: {other:?}"));
            Value::Null
        }
    };

    let mut jobs = Vec::new();
    {
        let mut ledger = target.ledger.lock().expect("ledger");
        let pick = |writes: &[Writes], must: &dyn Fn(usize) -> bool, rng: &mut StdRng| {
            let mut chosen: Vec<usize> = Vec::new();
            let mut older = Vec::new();
            for (index, w) in writes.iter().enumerate() {
                if full || w.unchecked > 0 || must(index) {
                    chosen.push(index);
                } else {
                    older.push(index);
                }
            }
            chosen.extend(older.choose_multiple(rng, SAMPLE));
            chosen
        };
        // An account whose TOTP confirmation was in flight is settled by
        // its own job first: until then nobody knows whether it needs a code.
        let enrolling: Vec<String> = ledger
            .enrollments_in_flight
            .iter()
            .map(|(account, _, _)| account.email.clone())
            .collect();
        let writes: Vec<Writes> = ledger.accounts.iter().map(|(_, w)| *w).collect();
        for index in pick(&writes, &|_| false, rng) {
            let account = &ledger.accounts[index].0;
            if !enrolling.contains(&account.email) {
                jobs.push(Job::Account(index, account.clone()));
            }
        }
        let writes: Vec<Writes> = ledger.chains.iter().map(|(_, w)| *w).collect();
        let states: Vec<ChainState> = ledger.chains.iter().map(|(c, _)| c.state).collect();
        for index in pick(&writes, &|i| states[i] == ChainState::RotationInFlight, rng) {
            // A third of the chains is also checked for replay, which
            // revokes the family: those are checked to stay dead later.
            let replay = rng.gen_range(0..3) == 0;
            jobs.push(Job::Chain(index, ledger.chains[index].0.clone(), replay));
        }
        let writes: Vec<Writes> = ledger.pats.iter().map(|(_, w)| *w).collect();
        let states: Vec<PatState> = ledger.pats.iter().map(|(p, _)| p.state).collect();
        for index in pick(&writes, &|i| states[i] == PatState::RevocationInFlight, rng) {
            jobs.push(Job::Pat(index, ledger.pats[index].0.clone()));
        }
        let writes: Vec<Writes> = ledger.approvals.iter().map(|(_, w)| *w).collect();
        let in_flight: Vec<bool> = ledger
            .approvals
            .iter()
            .map(|(a, _)| a.in_flight.is_some())
            .collect();
        for index in pick(&writes, &|i| in_flight[i], rng) {
            jobs.push(Job::Approval(index, ledger.approvals[index].0.clone()));
        }
        for registration in std::mem::take(&mut ledger.registrations_in_flight) {
            jobs.push(Job::Registration(registration));
        }
        for (account, secret, step) in std::mem::take(&mut ledger.enrollments_in_flight) {
            jobs.push(Job::Enrollment(account, secret, step));
        }
    }

    let approvals_page = &approvals_page;
    let mut outcomes = futures_util::stream::iter(jobs)
        .map(|job| run(target, job, approvals_page))
        .buffer_unordered(CONCURRENT_CHECKS);
    let mut results = Vec::new();
    while let Some(result) = outcomes.next().await {
        results.push(result);
    }

    apply(target, results, &mut report);
    check_keys(target, &mut report).await;
    report
}

/// Writes the checks' outcomes back into the ledger and counts them.
fn apply(target: &Target, results: Vec<(Outcome, Verdict, bool)>, report: &mut CheckReport) {
    let mut ledger = target.ledger.lock().expect("ledger");
    for (outcome, verdict, settled) in results {
        report.records_checked += 1;
        if settled {
            report.in_flight_settled += 1;
        }
        let writes = match &outcome {
            Outcome::Account(index, account) => {
                // Only what the check changed: the TOTP step it spent.
                let known = &mut ledger.accounts[*index].0;
                known.last_totp_step = known.last_totp_step.max(account.last_totp_step);
                Some(&mut ledger.accounts[*index].1)
            }
            Outcome::Chain(index, chain) => {
                ledger.chains[*index].0 = chain.clone();
                Some(&mut ledger.chains[*index].1)
            }
            Outcome::Pat(index, pat) => {
                ledger.pats[*index].0 = pat.clone();
                Some(&mut ledger.pats[*index].1)
            }
            Outcome::Approval(index, approval) => {
                ledger.approvals[*index].0 = approval.clone();
                Some(&mut ledger.approvals[*index].1)
            }
            Outcome::NewAccount(account) => {
                ledger.accounts.push((account.clone(), Writes::default()));
                None
            }
            // The sign-in that settled the enrollment also checked the
            // account's own writes, which its Account job skipped: counted
            // here, else a kill during the last round's enrollment leaves
            // them acknowledged and never checked.
            Outcome::EnrollmentSettled(account) => {
                ledger.account_mut(&account.email).map(|(known, writes)| {
                    if account.totp.is_some() {
                        known.totp = account.totp.clone();
                        known.last_totp_step = known.last_totp_step.max(account.last_totp_step);
                    }
                    writes
                })
            }
            Outcome::Nothing => None,
        };
        match verdict {
            Ok(()) => {
                if let Some(writes) = writes {
                    report.writes_checked += writes.unchecked;
                    writes.unchecked = 0;
                }
            }
            Err(lost) => report.lost.push(lost),
        }
    }
}

/// Every acknowledged rotation's signing key is still listed.
async fn check_keys(target: &Target, report: &mut CheckReport) {
    let keys = target
        .operator(reqwest::Method::GET, "/v1/keys", None)
        .await;
    let listed: Vec<String> = match &keys {
        Some((200, page)) => page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|key| key["kid"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        other => {
            report.lost.push(format!("GET /v1/keys: {other:?}"));
            Vec::new()
        }
    };
    let mut ledger = target.ledger.lock().expect("ledger");
    for (kid, writes) in &mut ledger.keys {
        report.records_checked += 1;
        if listed.contains(kid) {
            report.writes_checked += writes.unchecked;
            writes.unchecked = 0;
        } else {
            report
                .lost
                .push(format!("signing key {kid} (rotation acknowledged) is gone"));
        }
    }
}

type Verdict = Result<(), String>;

async fn run(target: &Target, job: Job, approvals: &Value) -> (Outcome, Verdict, bool) {
    match job {
        Job::Account(index, account) => {
            let (account, verdict) = check_account(target, account).await;
            (Outcome::Account(index, account), verdict, false)
        }
        Job::Chain(index, chain, replay) => {
            let settled = chain.state == ChainState::RotationInFlight;
            let (chain, verdict) = check_chain(target, chain, replay).await;
            (Outcome::Chain(index, chain), verdict, settled)
        }
        Job::Pat(index, pat) => {
            let settled = pat.state == PatState::RevocationInFlight;
            let (pat, verdict) = check_pat(target, pat).await;
            (Outcome::Pat(index, pat), verdict, settled)
        }
        Job::Approval(index, approval) => {
            let settled = approval.in_flight.is_some();
            let (approval, verdict) = check_approval(target, approval, approvals).await;
            (Outcome::Approval(index, approval), verdict, settled)
        }
        Job::Registration(registration) => {
            let (outcome, verdict) = settle_registration(target, registration, approvals).await;
            (outcome, verdict, true)
        }
        Job::Enrollment(account, secret, step) => {
            let (outcome, verdict) = settle_enrollment(target, account, secret, step).await;
            (outcome, verdict, true)
        }
    }
}

/// Signs in (with a TOTP code when enrolled) and out again.
async fn check_account(target: &Target, mut account: Account) -> (Account, Verdict) {
    let email = account.email.clone();
    let answer = target.login(&email, &account.org_slug).await;
    let verdict = match (&account.totp, answer) {
        (None, Some((200, tokens))) => sign_out(target, &tokens).await,
        (Some(secret), Some((202, step))) if step["mfa_required"] == true => {
            let now = crate::totp::current_step();
            match (now - 1..=now + 1).find(|s| *s > account.last_totp_step) {
                // Every code of the window was spent by earlier checks:
                // that a code is asked for is what this check can show.
                None => Ok(()),
                Some(code_step) => {
                    account.last_totp_step = code_step;
                    let challenge = target
                        .post_json(
                            "/mfa/challenge",
                            json!({
                                "mfa_token": step["mfa_token"],
                                "code": crate::totp::totp_at(secret, code_step),
                            }),
                        )
                        .await;
                    match challenge {
                        Some((200, tokens)) => sign_out(target, &tokens).await,
                        other => Err(format!(
                            "{email}: enrolled TOTP code refused at the MFA step: {other:?}"
                        )),
                    }
                }
            }
        }
        (Some(_), other) => Err(format!(
            "{email}: enrolled TOTP, but the password alone answered {other:?}"
        )),
        (None, other) => Err(format!("{email}: registered, but login answered {other:?}")),
    };
    (account, verdict)
}

async fn sign_out(target: &Target, tokens: &Value) -> Verdict {
    let access = tokens["access_token"].as_str().unwrap_or_default();
    match target.logout(access).await {
        Some((204, _)) => Ok(()),
        other => Err(format!("logout after a check's login answered {other:?}")),
    }
}

fn is_invalid_grant(answer: &Option<(u16, Value)>) -> bool {
    matches!(answer, Some((400, body)) if body["error"] == "invalid_grant")
}

/// The newest token rotates; with `replay`, the spent one before it is a
/// replay, which revokes the family (the new token dies with it).
async fn check_chain(target: &Target, mut chain: Chain, replay: bool) -> (Chain, Verdict) {
    let email = chain.email.clone();
    let rotated = target.rotate(&chain.current).await;
    match chain.state {
        ChainState::Revoked => {
            let verdict = if is_invalid_grant(&rotated) {
                Ok(())
            } else {
                Err(format!(
                    "{email}: a revoked refresh family came back: {rotated:?}"
                ))
            };
            return (chain, verdict);
        }
        ChainState::RotationInFlight if is_invalid_grant(&rotated) => {
            // The unanswered rotation committed: presenting its input again
            // was a replay, and the family is revoked. Whole either way.
            chain.state = ChainState::Revoked;
            return (chain, Ok(()));
        }
        _ => {}
    }
    let Some(next) = rotated
        .as_ref()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| body["refresh_token"].as_str())
        .map(str::to_owned)
    else {
        let verdict = Err(format!(
            "{email}: the newest refresh token ({:?}) does not rotate: {rotated:?}",
            chain.state
        ));
        return (chain, verdict);
    };
    let spent = std::mem::replace(&mut chain.current, next.clone());
    let older = chain.previous.replace(spent);
    chain.state = ChainState::Live;
    if replay {
        if let Some(older) = older {
            let replayed = target.rotate(&older).await;
            let after = target.rotate(&next).await;
            chain.state = ChainState::Revoked;
            if !is_invalid_grant(&replayed) {
                return (
                    chain,
                    Err(format!(
                        "{email}: an older refresh token is not a replay: {replayed:?}"
                    )),
                );
            }
            if !is_invalid_grant(&after) {
                return (
                    chain,
                    Err(format!("{email}: the family outlived a replay: {after:?}")),
                );
            }
        }
    }
    (chain, Ok(()))
}

/// A live PAT calls the control plane; a revoked one is refused.
async fn check_pat(target: &Target, mut pat: Pat) -> (Pat, Verdict) {
    let answer = target
        .bearer(
            reqwest::Method::GET,
            "/api/v1/sessions",
            &pat.token,
            Some(&pat.org_id),
            None,
        )
        .await;
    let status = answer.as_ref().map(|(status, _)| *status);
    let verdict = match (pat.state, status) {
        (PatState::Live, Some(200)) | (PatState::Revoked, Some(401)) => Ok(()),
        (PatState::RevocationInFlight, Some(200)) => {
            pat.state = PatState::Live;
            Ok(())
        }
        (PatState::RevocationInFlight, Some(401)) => {
            pat.state = PatState::Revoked;
            Ok(())
        }
        (state, _) => Err(format!(
            "{}: PAT {} ({state:?}) answered {answer:?}",
            pat.email, pat.id
        )),
    };
    (pat, verdict)
}

/// An approval keeps its acknowledged state; its sign-up logs in only once
/// approved; a decided one cannot be decided again.
async fn check_approval(
    target: &Target,
    mut approval: Approval,
    approvals: &Value,
) -> (Approval, Verdict) {
    let email = approval.email.clone();
    if approval.id.is_empty() {
        approval.id = approval_id_of(approvals, &email).unwrap_or_default();
    }
    let listed = approvals["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["id"] == approval.id.as_str()));
    let Some(status) = listed.and_then(|item| item["status"].as_str()) else {
        return (
            approval,
            Err(format!("{email}: its acknowledged approval is gone")),
        );
    };
    let seen = match status {
        "pending" => None,
        "approved" => Some(true),
        "denied" => Some(false),
        other => return (approval, Err(format!("{email}: approval in state {other}"))),
    };
    if let Some(sent) = approval.in_flight.take() {
        if seen.is_some() && seen != Some(sent) {
            return (
                approval,
                Err(format!(
                    "{email}: an unanswered decision ({sent}) came out as {status}"
                )),
            );
        }
        approval.decision = seen;
    }
    if seen != approval.decision {
        return (
            approval.clone(),
            Err(format!(
                "{email}: acknowledged decision {:?}, approval now {status}",
                approval.decision
            )),
        );
    }
    let login = target.login(&email, "gated").await;
    let verdict = match (approval.decision, &login) {
        (Some(true), Some((200, tokens))) => sign_out(target, tokens).await,
        (Some(false) | None, Some((401, _))) => Ok(()),
        _ => Err(format!(
            "{email}: approval {status}, but login answered {login:?}"
        )),
    };
    if verdict.is_err() || approval.decision.is_none() {
        return (approval, verdict);
    }
    let again = target
        .operator(
            reqwest::Method::POST,
            &format!("/v1/approvals/{}/resolve", approval.id),
            Some(json!({"approved": approval.decision != Some(true)})),
        )
        .await;
    let verdict = match again {
        Some((409, _)) => Ok(()),
        other => Err(format!(
            "{email}: a decided approval could be decided again: {other:?}"
        )),
    };
    (approval, verdict)
}

/// A sign-up that was in flight: if the email is taken now, the account is
/// whole (it logs in; a gated one has its approval).
async fn settle_registration(
    target: &Target,
    registration: RegistrationInFlight,
    approvals: &Value,
) -> (Outcome, Verdict) {
    let RegistrationInFlight { email, org_slug } = registration;
    let again = target.register(&email, &org_slug).await;
    match (org_slug.as_str(), &again) {
        ("default", Some((201, profile))) => {
            let account = Account {
                email: email.clone(),
                org_slug,
                org_id: profile["memberships"][0]["org_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                totp: None,
                last_totp_step: 0,
            };
            (Outcome::NewAccount(account), Ok(()))
        }
        ("default", Some((409, _))) => match target.login(&email, "default").await {
            Some((200, tokens)) => (Outcome::Nothing, sign_out(target, &tokens).await),
            other => (
                Outcome::Nothing,
                Err(format!(
                    "{email}: half a registration: the email is taken, login answered {other:?}"
                )),
            ),
        },
        ("gated", Some((202, _))) => (Outcome::Nothing, Ok(())),
        ("gated", Some((409, _))) => {
            if approval_id_of(approvals, &email).is_some() {
                (Outcome::Nothing, Ok(()))
            } else {
                (
                    Outcome::Nothing,
                    Err(format!(
                        "{email}: half a sign-up: the email is taken, no approval"
                    )),
                )
            }
        }
        _ => (
            Outcome::Nothing,
            Err(format!("{email}: registering again answered {again:?}")),
        ),
    }
}

/// A TOTP confirmation that was in flight: either the password alone
/// still signs in, or a code is asked for.
async fn settle_enrollment(
    target: &Target,
    mut account: Account,
    secret: String,
    step: u64,
) -> (Outcome, Verdict) {
    match target.login(&account.email, &account.org_slug).await {
        Some((200, tokens)) => (
            Outcome::EnrollmentSettled(account),
            sign_out(target, &tokens).await,
        ),
        Some((202, body)) if body["mfa_required"] == true => {
            account.totp = Some(secret);
            account.last_totp_step = step;
            (Outcome::EnrollmentSettled(account), Ok(()))
        }
        other => (
            Outcome::Nothing,
            Err(format!(
                "{}: after an unanswered TOTP confirmation, login answered {other:?}",
                account.email
            )),
        ),
    }
}
