//! What the clients saw acknowledged, and what they sent without seeing an
//! answer (in flight at a kill). The checks after each restart read it;
//! each record counts the acknowledged writes it stands for, so the run can
//! say how many writes were checked.

/// An account whose registration was acknowledged.
#[derive(Clone, Debug)]
pub struct Account {
    pub email: String,
    /// `default`, or `gated` for a sign-up that waits for an approval.
    pub org_slug: String,
    pub org_id: String,
    /// The TOTP secret, once the enrollment was acknowledged.
    pub totp: Option<String>,
    /// The newest TOTP step spent for this account (a code counts once).
    pub last_totp_step: u64,
}

/// A refresh-token chain: one login, then rotations.
#[derive(Clone, Debug)]
pub struct Chain {
    pub email: String,
    /// The newest refresh token an acknowledged answer carried.
    pub current: String,
    /// The one it replaced (spent), if any.
    pub previous: Option<String>,
    pub state: ChainState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainState {
    Live,
    /// A rotation was sent and not answered: `current` may be spent.
    RotationInFlight,
    /// The family was revoked by a replay the checks made on purpose (or
    /// a rotation in flight committed): every token of it stays dead.
    Revoked,
}

#[derive(Clone, Debug)]
pub struct Pat {
    pub email: String,
    pub org_id: String,
    pub id: String,
    pub token: String,
    pub state: PatState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatState {
    Live,
    RevocationInFlight,
    Revoked,
}

#[derive(Clone, Debug)]
pub struct Approval {
    pub id: String,
    pub email: String,
    /// The acknowledged decision; `None` while pending.
    pub decision: Option<bool>,
    /// A decision sent and not answered.
    pub in_flight: Option<bool>,
}

/// A registration sent and not answered.
#[derive(Clone, Debug)]
pub struct RegistrationInFlight {
    pub email: String,
    pub org_slug: String,
}

/// One record's acknowledged writes and whether a check after a kill has
/// seen them all.
#[derive(Clone, Copy, Debug, Default)]
pub struct Writes {
    pub acknowledged: u64,
    pub unchecked: u64,
}

impl Writes {
    pub fn one() -> Writes {
        Writes {
            acknowledged: 1,
            unchecked: 1,
        }
    }

    pub fn add(&mut self) {
        self.acknowledged += 1;
        self.unchecked += 1;
    }
}

#[derive(Default)]
pub struct Ledger {
    pub accounts: Vec<(Account, Writes)>,
    pub chains: Vec<(Chain, Writes)>,
    pub pats: Vec<(Pat, Writes)>,
    pub approvals: Vec<(Approval, Writes)>,
    /// Signing keys whose rotation was acknowledged (kid).
    pub keys: Vec<(String, Writes)>,
    pub registrations_in_flight: Vec<RegistrationInFlight>,
    /// TOTP enrollments in flight at a kill: the account, its secret and
    /// the step whose code the unanswered confirmation carried.
    pub enrollments_in_flight: Vec<(Account, String, u64)>,
    /// Writes acknowledged after the last kill (none are lost if nothing
    /// crashed; they are checked at the final check).
    pub acknowledged_total: u64,
}

impl Ledger {
    pub fn account_mut(&mut self, email: &str) -> Option<&mut (Account, Writes)> {
        self.accounts
            .iter_mut()
            .find(|(account, _)| account.email == email)
    }

    pub fn add_account(&mut self, account: Account) {
        self.acknowledged_total += 1;
        self.accounts.push((account, Writes::one()));
    }
}
