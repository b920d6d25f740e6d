//! Owns the configurable password policy and the check of a candidate password against it.
//!
//! The policy only judges the plaintext in front of it. Password history needs the stored
//! hashes and the slow hasher, so [`PasswordPolicy::violations`] never reports
//! [`Violation::ReusedPassword`]; the caller compares the candidate with the last
//! `history_count` hashes using `crate::crypto::passwords` and adds that violation itself.
//!
//! Character classes are Unicode-aware: an uppercase or lowercase letter is any character
//! with that Unicode case, a digit is any Unicode numeric character, and a special
//! character is anything that is neither alphanumeric nor a control character. A space
//! therefore counts as a special character, which matches the OWASP list of special
//! characters and does not penalise passphrases.

use super::common_passwords;
use serde::{Deserialize, Serialize};

/// The highest `max_length` a policy may set, so that a misconfiguration cannot make the
/// server accept (and hash) arbitrarily large inputs.
pub const MAX_PASSWORD_LENGTH_CEILING: usize = 1024;

/// The highest `history_count` a policy may set, because every remembered password costs
/// one full password hash verification on each password change.
pub const MAX_HISTORY_COUNT: usize = 24;

/// Names and fragments shorter than this are too likely to occur by chance to be rejected.
const MIN_USER_INFO_FRAGMENT_CHARS: usize = 3;

/// The rules a new password must satisfy. Missing fields in configuration take the
/// defaults shown on each field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Minimum length in Unicode scalar values (default 8).
    pub min_length: usize,
    /// Maximum length in Unicode scalar values (default 128).
    pub max_length: usize,
    /// Require at least one uppercase letter (default true).
    pub require_uppercase: bool,
    /// Require at least one lowercase letter (default true).
    pub require_lowercase: bool,
    /// Require at least one digit (default true).
    pub require_digit: bool,
    /// Require at least one special character (default false).
    pub require_special: bool,
    /// Reject passwords found in the embedded list of common passwords (default true).
    pub reject_common: bool,
    /// Reject passwords that contain the user's email address or name (default true).
    pub reject_user_info: bool,
    /// How many previous passwords may not be reused; 0 disables the check (default 0).
    pub history_count: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 128,
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_special: false,
            reject_common: true,
            reject_user_info: true,
            history_count: 0,
        }
    }
}

/// What is known about the account whose password is being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserInfo<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
}

/// One rule a candidate password breaks. It carries no part of the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    TooShort,
    TooLong,
    MissingUppercase,
    MissingLowercase,
    MissingDigit,
    MissingSpecial,
    Common,
    ContainsUserInfo,
    ContainsNul,
    ReusedPassword,
}

impl Violation {
    pub const ALL: [Violation; 10] = [
        Violation::TooShort,
        Violation::TooLong,
        Violation::MissingUppercase,
        Violation::MissingLowercase,
        Violation::MissingDigit,
        Violation::MissingSpecial,
        Violation::Common,
        Violation::ContainsUserInfo,
        Violation::ContainsNul,
        Violation::ReusedPassword,
    ];

    /// What the UI tells a person to do about it, whatever the org's numbers.
    pub fn advice(self) -> &'static str {
        match self {
            Violation::TooShort => "It is too short.",
            Violation::TooLong => "It is too long.",
            Violation::MissingUppercase => "Add an uppercase letter.",
            Violation::MissingLowercase => "Add a lowercase letter.",
            Violation::MissingDigit => "Add a digit.",
            Violation::MissingSpecial => "Add a character that is not a letter or a digit.",
            Violation::Common => "It is a commonly used password; choose something less guessable.",
            Violation::ContainsUserInfo => "It must not contain your email address or name.",
            Violation::ContainsNul => "It contains a character that is not allowed.",
            Violation::ReusedPassword => "You used it recently; choose a new one.",
        }
    }

    /// Returns the stable machine-readable code, identical to the serde representation.
    pub fn code(self) -> &'static str {
        match self {
            Violation::TooShort => "too_short",
            Violation::TooLong => "too_long",
            Violation::MissingUppercase => "missing_uppercase",
            Violation::MissingLowercase => "missing_lowercase",
            Violation::MissingDigit => "missing_digit",
            Violation::MissingSpecial => "missing_special",
            Violation::Common => "common",
            Violation::ContainsUserInfo => "contains_user_info",
            Violation::ContainsNul => "contains_nul",
            Violation::ReusedPassword => "reused_password",
        }
    }

    /// Returns a human-readable explanation that completes the sentence "The password …".
    pub fn message(self, policy: &PasswordPolicy) -> String {
        match self {
            Violation::TooShort => {
                format!("must be at least {} characters", policy.min_length)
            }
            Violation::TooLong => format!("must be at most {} characters", policy.max_length),
            Violation::MissingUppercase => "must contain an uppercase letter".to_owned(),
            Violation::MissingLowercase => "must contain a lowercase letter".to_owned(),
            Violation::MissingDigit => "must contain a digit".to_owned(),
            Violation::MissingSpecial => {
                "must contain a character that is not a letter or a digit".to_owned()
            }
            Violation::Common => "is too common and easy to guess".to_owned(),
            Violation::ContainsUserInfo => "must not contain your email address or name".to_owned(),
            Violation::ContainsNul => "must not contain a NUL character".to_owned(),
            Violation::ReusedPassword => format!(
                "must not be one of your last {} passwords",
                policy.history_count
            ),
        }
    }
}

impl PasswordPolicy {
    /// Returns every rule the password breaks, in the declaration order of [`Violation`],
    /// or an empty list if it is acceptable.
    ///
    /// A password longer than `max_length` yields only [`Violation::TooLong`] (plus
    /// [`Violation::ContainsNul`] if it has one) and is not examined further. That keeps an
    /// oversized input, such as a megabyte posted by an attacker, down to two linear scans
    /// instead of lowercasing it and searching it against the common list and user details.
    ///
    /// [`Violation::ReusedPassword`] is never returned here; see the module documentation.
    pub fn violations(&self, password: &str, user: &UserInfo) -> Vec<Violation> {
        let mut violations = Vec::new();
        let contains_nul = password.contains('\0');
        let length = password.chars().count();

        if length > self.max_length {
            violations.push(Violation::TooLong);
            if contains_nul {
                violations.push(Violation::ContainsNul);
            }
            return violations;
        }

        if length < self.min_length {
            violations.push(Violation::TooShort);
        }
        if self.require_uppercase && !password.chars().any(char::is_uppercase) {
            violations.push(Violation::MissingUppercase);
        }
        if self.require_lowercase && !password.chars().any(char::is_lowercase) {
            violations.push(Violation::MissingLowercase);
        }
        if self.require_digit && !password.chars().any(char::is_numeric) {
            violations.push(Violation::MissingDigit);
        }
        if self.require_special && !password.chars().any(is_special_character) {
            violations.push(Violation::MissingSpecial);
        }

        let lowercase_password = password.to_lowercase();
        if self.reject_common
            && (common_passwords::contains(password)
                || common_passwords::contains(&lowercase_password))
        {
            violations.push(Violation::Common);
        }
        if self.reject_user_info && contains_user_info(&lowercase_password, user) {
            violations.push(Violation::ContainsUserInfo);
        }
        if contains_nul {
            violations.push(Violation::ContainsNul);
        }
        violations
    }

    /// Checks that the policy is internally consistent, returning a description of the
    /// first problem found. Call it when loading configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_length < 1 {
            return Err("password policy min_length must be at least 1".to_owned());
        }
        if self.max_length < self.min_length {
            return Err(format!(
                "password policy max_length ({}) must not be less than min_length ({})",
                self.max_length, self.min_length
            ));
        }
        if self.max_length > MAX_PASSWORD_LENGTH_CEILING {
            return Err(format!(
                "password policy max_length ({}) must not exceed {MAX_PASSWORD_LENGTH_CEILING}",
                self.max_length
            ));
        }
        if self.history_count > MAX_HISTORY_COUNT {
            return Err(format!(
                "password policy history_count ({}) must not exceed {MAX_HISTORY_COUNT}",
                self.history_count
            ));
        }
        Ok(())
    }
}

fn is_special_character(character: char) -> bool {
    !character.is_alphanumeric() && !character.is_control()
}

/// Reports whether the already-lowercased password contains the whole email address, its
/// local part, or any word of the name. Short fragments are ignored because they would
/// reject many unrelated passwords.
fn contains_user_info(lowercase_password: &str, user: &UserInfo) -> bool {
    let lowercase_email = user.email.trim().to_lowercase();
    if !lowercase_email.is_empty() && lowercase_password.contains(&lowercase_email) {
        return true;
    }
    let local_part = lowercase_email
        .rsplit_once('@')
        .map_or(lowercase_email.as_str(), |(local_part, _)| local_part);
    if is_long_enough_fragment(local_part) && lowercase_password.contains(local_part) {
        return true;
    }
    user.name.is_some_and(|name| {
        name.split_whitespace()
            .map(str::to_lowercase)
            .any(|word| is_long_enough_fragment(&word) && lowercase_password.contains(&word))
    })
}

fn is_long_enough_fragment(fragment: &str) -> bool {
    fragment.chars().count() >= MIN_USER_INFO_FRAGMENT_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: UserInfo<'static> = UserInfo {
        email: "nobody@example.com",
        name: None,
    };

    fn violations_with_default_policy(password: &str) -> Vec<Violation> {
        PasswordPolicy::default().violations(password, &NOBODY)
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.min_length, 8);
        assert_eq!(policy.max_length, 128);
        assert!(policy.require_uppercase && policy.require_lowercase && policy.require_digit);
        assert!(!policy.require_special);
        assert!(policy.reject_common && policy.reject_user_info);
        assert_eq!(policy.history_count, 0);
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn a_strong_password_has_no_violations() {
        assert_eq!(
            violations_with_default_policy("Vq7-tundra-Lamp"),
            Vec::new()
        );
    }

    #[test]
    fn every_violated_rule_is_reported() {
        let policy = PasswordPolicy {
            require_special: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.violations("kzvq", &NOBODY),
            vec![
                Violation::TooShort,
                Violation::MissingUppercase,
                Violation::MissingDigit,
                Violation::MissingSpecial,
            ]
        );
        assert_eq!(
            policy.violations("KZVQWXRTPM", &NOBODY),
            vec![
                Violation::MissingLowercase,
                Violation::MissingDigit,
                Violation::MissingSpecial,
            ]
        );
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        let policy = PasswordPolicy {
            min_length: 4,
            max_length: 4,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            reject_common: false,
            ..PasswordPolicy::default()
        };
        // Four characters but sixteen bytes.
        assert_eq!(policy.violations("🦀🦀🦀🦀", &NOBODY), Vec::new());
        assert_eq!(policy.violations("ééé", &NOBODY), vec![Violation::TooShort]);
        assert_eq!(
            policy.violations("ééééé", &NOBODY),
            vec![Violation::TooLong]
        );
    }

    #[test]
    fn a_huge_password_reports_only_too_long_and_nul() {
        let mut huge = "a".repeat(1_000_000);
        assert_eq!(
            violations_with_default_policy(&huge),
            vec![Violation::TooLong]
        );
        huge.push('\0');
        assert_eq!(
            violations_with_default_policy(&huge),
            vec![Violation::TooLong, Violation::ContainsNul]
        );
    }

    #[test]
    fn a_nul_character_is_reported() {
        assert_eq!(
            violations_with_default_policy("Vq7-tundra\0Lamp"),
            vec![Violation::ContainsNul]
        );
    }

    #[test]
    fn unicode_letters_and_digits_count_towards_character_classes() {
        let policy = PasswordPolicy {
            require_special: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(policy.violations("ÄöüßΩω٣ ", &NOBODY), Vec::new());
    }

    #[test]
    fn a_space_counts_as_special_but_a_tab_does_not() {
        let policy = PasswordPolicy {
            require_special: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(policy.violations("Tundra lamp 7", &NOBODY), Vec::new());
        assert_eq!(
            policy.violations("Tundra\tlamp\t7", &NOBODY),
            vec![Violation::MissingSpecial]
        );
    }

    #[test]
    fn famous_common_passwords_are_rejected() {
        let policy = PasswordPolicy {
            min_length: 1,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            ..PasswordPolicy::default()
        };
        for famous in [
            "password",
            "123456789",
            "qwerty123",
            "Password1",
            "Passw0rd",
            "trustno1",
        ] {
            assert_eq!(
                policy.violations(famous, &NOBODY),
                vec![Violation::Common],
                "a famous password was not rejected"
            );
        }
    }

    #[test]
    fn common_passwords_are_matched_case_insensitively() {
        // The list holds "password" and "iloveyou" but not these spellings, so only the
        // lowercase comparison can catch them.
        assert!(!common_passwords::contains("PaSsWoRd"));
        assert!(!common_passwords::contains("IloveYou"));
        let letters_only = PasswordPolicy {
            require_digit: false,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            letters_only.violations("PaSsWoRd", &NOBODY),
            vec![Violation::Common]
        );
        assert_eq!(
            letters_only.violations("IloveYou", &NOBODY),
            vec![Violation::Common]
        );
    }

    #[test]
    fn a_long_random_password_is_not_common() {
        assert_eq!(
            violations_with_default_policy("k3Vx9QpL7mWz2RtB8nYc4HfJ6dGs"),
            Vec::new()
        );
    }

    #[test]
    fn the_email_local_part_is_rejected_case_insensitively() {
        let user = UserInfo {
            email: "Margaret@example.com",
            name: None,
        };
        assert_eq!(
            PasswordPolicy::default().violations("xxMARGARET2024x", &user),
            vec![Violation::ContainsUserInfo]
        );
    }

    #[test]
    fn the_whole_email_is_rejected() {
        let user = UserInfo {
            email: "al@example.com",
            name: None,
        };
        assert_eq!(
            PasswordPolicy::default().violations("Al@Example.com9", &user),
            vec![Violation::ContainsUserInfo]
        );
    }

    #[test]
    fn a_short_local_part_alone_is_not_rejected() {
        let user = UserInfo {
            email: "al@example.com",
            name: None,
        };
        assert_eq!(
            PasswordPolicy::default().violations("Vq7-tundra-Al", &user),
            Vec::new()
        );
    }

    #[test]
    fn words_of_the_name_with_at_least_three_characters_are_rejected() {
        let user = UserInfo {
            email: "x@example.com",
            name: Some("Jo  van Houten"),
        };
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.violations("Blue7houtenSky", &user),
            vec![Violation::ContainsUserInfo]
        );
        assert_eq!(
            policy.violations("Blue7VANsky", &user),
            vec![Violation::ContainsUserInfo]
        );
        assert_eq!(policy.violations("Blue7JoSky", &user), Vec::new());
    }

    #[test]
    fn user_info_is_ignored_when_the_rule_is_disabled() {
        let user = UserInfo {
            email: "margaret@example.com",
            name: None,
        };
        let policy = PasswordPolicy {
            reject_user_info: false,
            ..PasswordPolicy::default()
        };
        assert_eq!(policy.violations("Margaret2024x", &user), Vec::new());
    }

    #[test]
    fn reused_password_is_never_produced_by_violations() {
        let policy = PasswordPolicy {
            history_count: 5,
            ..PasswordPolicy::default()
        };
        assert!(!policy
            .violations("password", &NOBODY)
            .contains(&Violation::ReusedPassword));
    }

    #[test]
    fn codes_match_the_serde_representation() {
        let all = [
            Violation::TooShort,
            Violation::TooLong,
            Violation::MissingUppercase,
            Violation::MissingLowercase,
            Violation::MissingDigit,
            Violation::MissingSpecial,
            Violation::Common,
            Violation::ContainsUserInfo,
            Violation::ContainsNul,
            Violation::ReusedPassword,
        ];
        for violation in all {
            let serialised = serde_json::to_string(&violation).unwrap();
            assert_eq!(serialised, format!("\"{}\"", violation.code()));
        }
    }

    #[test]
    fn messages_mention_the_configured_limits() {
        let policy = PasswordPolicy {
            min_length: 12,
            max_length: 64,
            history_count: 3,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            Violation::TooShort.message(&policy),
            "must be at least 12 characters"
        );
        assert_eq!(
            Violation::TooLong.message(&policy),
            "must be at most 64 characters"
        );
        assert!(Violation::ReusedPassword.message(&policy).contains('3'));
    }

    #[test]
    fn policy_deserialises_with_defaults_and_rejects_unknown_fields() {
        let policy: PasswordPolicy = serde_json::from_str(r#"{"min_length": 12}"#).unwrap();
        assert_eq!(
            policy,
            PasswordPolicy {
                min_length: 12,
                ..PasswordPolicy::default()
            }
        );
        assert!(serde_json::from_str::<PasswordPolicy>(r#"{"min_lenght": 12}"#).is_err());
    }

    #[test]
    fn inconsistent_policies_fail_validation() {
        let zero_minimum = PasswordPolicy {
            min_length: 0,
            ..PasswordPolicy::default()
        };
        assert!(zero_minimum.validate().is_err());
        let inverted = PasswordPolicy {
            min_length: 20,
            max_length: 10,
            ..PasswordPolicy::default()
        };
        assert!(inverted.validate().is_err());
        let enormous = PasswordPolicy {
            max_length: 1025,
            ..PasswordPolicy::default()
        };
        assert!(enormous.validate().is_err());
        let long_history = PasswordPolicy {
            history_count: 25,
            ..PasswordPolicy::default()
        };
        assert!(long_history.validate().is_err());
        let widest_allowed = PasswordPolicy {
            min_length: 1,
            max_length: 1024,
            history_count: 24,
            ..PasswordPolicy::default()
        };
        assert_eq!(widest_allowed.validate(), Ok(()));
    }

    mod properties {
        //! Any policy that validates, any password, any user: the answer
        //! keeps its documented shape, and turning a rule off never adds a
        //! violation.

        use proptest::prelude::*;

        use super::*;

        fn policy() -> impl Strategy<Value = PasswordPolicy> {
            (
                1_usize..20,
                0_usize..100,
                any::<[bool; 6]>(),
                0..=MAX_HISTORY_COUNT,
            )
                .prop_map(|(min_length, extra, rules, history_count)| PasswordPolicy {
                    min_length,
                    max_length: min_length + extra,
                    require_uppercase: rules[0],
                    require_lowercase: rules[1],
                    require_digit: rules[2],
                    require_special: rules[3],
                    reject_common: rules[4],
                    reject_user_info: rules[5],
                    history_count,
                })
        }

        /// Passwords: arbitrary text, and text close to what people type.
        fn password() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                "[a-zA-Z0-9 !-]{0,40}",
                "(password|qwerty|alice|Alice|example)[0-9]{0,3}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn violations_keep_their_documented_shape(
                policy in policy(),
                password in password(),
                name in proptest::option::of("[a-zA-Z ]{0,20}"),
            ) {
                prop_assert_eq!(policy.validate(), Ok(()));
                let user = UserInfo { email: "alice.smith@example.com", name: name.as_deref() };
                let violations = policy.violations(&password, &user);
                let positions: Vec<usize> = violations
                    .iter()
                    .map(|v| Violation::ALL.iter().position(|a| a == v).unwrap())
                    .collect();
                prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "declaration order, once each: {:?}", violations);
                prop_assert!(!violations.contains(&Violation::ReusedPassword));
                prop_assert_eq!(violations.contains(&Violation::ContainsNul), password.contains('\0'));
                let length = password.chars().count();
                let too_long = length > policy.max_length;
                prop_assert_eq!(violations.contains(&Violation::TooLong), too_long);
                if too_long {
                    prop_assert!(violations.iter().all(|v| matches!(v, Violation::TooLong | Violation::ContainsNul)));
                } else {
                    prop_assert_eq!(violations.contains(&Violation::TooShort), length < policy.min_length);
                }
                if violations.is_empty() {
                    prop_assert!(!policy.require_uppercase || password.chars().any(char::is_uppercase));
                    prop_assert!(!policy.require_lowercase || password.chars().any(char::is_lowercase));
                    prop_assert!(!policy.require_digit || password.chars().any(char::is_numeric));
                    prop_assert!(!policy.reject_common || !common_passwords::contains(&password));
                    prop_assert!(!policy.reject_user_info || !password.to_lowercase().contains("alice.smith"));
                }
            }

            #[test]
            fn turning_a_rule_off_never_adds_a_violation(
                policy in policy(),
                password in password(),
            ) {
                let strictest = PasswordPolicy {
                    require_uppercase: true,
                    require_lowercase: true,
                    require_digit: true,
                    require_special: true,
                    reject_common: true,
                    reject_user_info: true,
                    ..policy.clone()
                };
                let user = UserInfo { email: "alice@example.com", name: Some("Alice Smith") };
                let strict = strictest.violations(&password, &user);
                for violation in policy.violations(&password, &user) {
                    prop_assert!(strict.contains(&violation), "{:?} only under the laxer policy", violation);
                }
            }
        }
    }
}
