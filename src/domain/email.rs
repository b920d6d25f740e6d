//! Owns the validated, normalised email address type used as a login identifier.
//!
//! An [`Email`] can only be built through [`Email::parse`], so every value of the type is
//! known to be syntactically valid and normalised. The accepted syntax is deliberately a
//! strict subset of RFC 5321/5322:
//!
//! - The local part must be an RFC 5322 dot-atom: ASCII letters, digits and
//!   ``!#$%&'*+/=?^_`{|}~-``, with dots allowed only between other characters (no leading,
//!   trailing or doubled dots). Quoted local parts are rejected because almost no real
//!   mailbox uses them and they make comparisons and display error-prone.
//! - Non-ASCII characters in the local part (SMTPUTF8 addresses) are rejected. Support for
//!   them among mail providers is patchy, and Unicode confusables would make two visually
//!   identical addresses belong to different accounts.
//! - The domain must be a DNS host name with at least one dot, made only of ASCII letters,
//!   digits, hyphens and dots. Internationalised domain names must be supplied in their
//!   punycode (`xn--`) form; Unicode domains are rejected rather than converted, because
//!   converting them correctly needs the full IDNA mapping tables. IP-address literals such
//!   as `[192.0.2.1]` are rejected, and so is an all-numeric top-level label, which keeps
//!   dotted-quad addresses like `user@192.0.2.1` out.
//!
//! Normalisation lowercases the whole address. Lowercasing the domain is always correct.
//! The local part is lowercased too: RFC 5321 allows it to be case-sensitive, but
//! practically every mail provider treats it case-insensitively, and letting `Bob@x.org`
//! and `bob@x.org` be two accounts in one organisation would let whoever registers the
//! second spelling impersonate or take over the first. Plus-tags and dots in the local part
//! are kept as they are, because some providers deliver `a.b@` and `ab@` (or `a+x@` and
//! `a@`) to distinct mailboxes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest address accepted, in bytes, as limited by the SMTP path length in RFC 5321.
pub const MAX_EMAIL_LENGTH: usize = 254;

/// The longest local part accepted, in bytes, per RFC 5321.
pub const MAX_LOCAL_PART_LENGTH: usize = 64;

/// The longest single domain label accepted, in bytes, per RFC 1035.
pub const MAX_DOMAIN_LABEL_LENGTH: usize = 63;

/// A syntactically valid, lowercased email address.
///
/// It serialises as a plain string and deserialisation goes through [`Email::parse`], so a
/// deserialised value is validated and normalised exactly like one parsed from user input.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// The reason an input was not accepted as an email address.
///
/// The messages never repeat the input, because the input may be something the user typed
/// into the wrong field, such as a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email address is empty")]
    Empty,
    #[error("email address is longer than 254 characters")]
    TooLong,
    #[error("email address contains a control character")]
    ContainsControlCharacter,
    #[error("email address contains whitespace")]
    ContainsWhitespace,
    #[error("email address is missing an '@'")]
    MissingAtSign,
    #[error("email address contains more than one '@'")]
    MultipleAtSigns,
    #[error("email address has nothing before the '@'")]
    EmptyLocalPart,
    #[error("the part of the email address before the '@' is longer than 64 characters")]
    LocalPartTooLong,
    #[error("the part of the email address before the '@' must contain only ASCII characters")]
    NonAsciiLocalPart,
    #[error(
        "the part of the email address before the '@' contains a character that is not allowed"
    )]
    InvalidLocalPartCharacter,
    #[error("the part of the email address before the '@' must not start or end with a dot or contain two dots in a row")]
    MisplacedDotInLocalPart,
    #[error("email address has nothing after the '@'")]
    EmptyDomain,
    #[error("the domain of the email address must contain a dot")]
    DomainWithoutDot,
    #[error("the domain of the email address must be ASCII; give internationalised domains in punycode (xn--) form")]
    NonAsciiDomain,
    #[error("the domain of the email address contains a character that is not allowed")]
    InvalidDomainCharacter,
    #[error("the domain of the email address has an empty label")]
    EmptyDomainLabel,
    #[error("the domain of the email address has a label longer than 63 characters")]
    DomainLabelTooLong,
    #[error("a label in the domain of the email address starts or ends with a hyphen")]
    DomainLabelHyphenAtEdge,
    #[error("the top-level domain of the email address must not be all digits")]
    NumericTopLevelDomain,
}

impl Email {
    /// Validates and normalises an email address typed by a user or read from storage.
    ///
    /// Surrounding whitespace is trimmed; everything else that does not match the accepted
    /// syntax described in the module documentation is rejected rather than repaired.
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > MAX_EMAIL_LENGTH {
            return Err(EmailError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(EmailError::ContainsControlCharacter);
        }
        if trimmed.chars().any(char::is_whitespace) {
            return Err(EmailError::ContainsWhitespace);
        }

        let (local_part, domain) = match trimmed.matches('@').count() {
            0 => return Err(EmailError::MissingAtSign),
            1 => trimmed.split_once('@').ok_or(EmailError::MissingAtSign)?,
            _ => return Err(EmailError::MultipleAtSigns),
        };

        validate_local_part(local_part)?;
        validate_domain(domain)?;

        Ok(Email(format!(
            "{}@{}",
            local_part.to_ascii_lowercase(),
            domain.to_ascii_lowercase()
        )))
    }

    /// Returns the normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the part before the '@'.
    pub fn local_part(&self) -> &str {
        self.0
            .split_once('@')
            .map_or("", |(local_part, _)| local_part)
    }

    /// Returns the part after the '@'.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, domain)| domain)
    }

    /// Returns the normalised address, consuming the value.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn validate_local_part(local_part: &str) -> Result<(), EmailError> {
    if local_part.is_empty() {
        return Err(EmailError::EmptyLocalPart);
    }
    if local_part.len() > MAX_LOCAL_PART_LENGTH {
        return Err(EmailError::LocalPartTooLong);
    }
    if !local_part.is_ascii() {
        return Err(EmailError::NonAsciiLocalPart);
    }
    if !local_part.chars().all(is_dot_atom_character) {
        return Err(EmailError::InvalidLocalPartCharacter);
    }
    if local_part.starts_with('.') || local_part.ends_with('.') || local_part.contains("..") {
        return Err(EmailError::MisplacedDotInLocalPart);
    }
    Ok(())
}

/// Reports whether a character may appear in an RFC 5322 dot-atom (dots are checked
/// separately because their position matters).
fn is_dot_atom_character(character: char) -> bool {
    character.is_ascii_alphanumeric()
        || character == '.'
        || "!#$%&'*+/=?^_`{|}~-".contains(character)
}

fn validate_domain(domain: &str) -> Result<(), EmailError> {
    if domain.is_empty() {
        return Err(EmailError::EmptyDomain);
    }
    if !domain.is_ascii() {
        return Err(EmailError::NonAsciiDomain);
    }
    if !domain
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || character == '-' || character == '.')
    {
        return Err(EmailError::InvalidDomainCharacter);
    }
    if !domain.contains('.') {
        return Err(EmailError::DomainWithoutDot);
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(EmailError::EmptyDomainLabel);
        }
        if label.len() > MAX_DOMAIN_LABEL_LENGTH {
            return Err(EmailError::DomainLabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(EmailError::DomainLabelHyphenAtEdge);
        }
    }
    let top_level_label = domain.rsplit('.').next().unwrap_or_default();
    if top_level_label
        .chars()
        .all(|character| character.is_ascii_digit())
    {
        return Err(EmailError::NumericTopLevelDomain);
    }
    Ok(())
}

impl fmt::Display for Email {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = EmailError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Email::parse(input)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        Email::parse(&input)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(input: &str) -> EmailError {
        Email::parse(input).expect_err("the input should have been rejected")
    }

    #[test]
    fn a_plain_address_is_accepted_unchanged() {
        let email = Email::parse("alice@example.com").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
        assert_eq!(email.local_part(), "alice");
        assert_eq!(email.domain(), "example.com");
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        let email = Email::parse("  \t alice@example.com \n").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn the_whole_address_is_lowercased() {
        let email = Email::parse("Bob.Smith@Example.COM").unwrap();
        assert_eq!(email.as_str(), "bob.smith@example.com");
        assert_eq!(
            Email::parse("BOB@x.org").unwrap(),
            Email::parse("bob@X.ORG").unwrap()
        );
    }

    #[test]
    fn plus_tags_and_dots_are_kept() {
        let email = Email::parse("first.last+news@example.com").unwrap();
        assert_eq!(email.as_str(), "first.last+news@example.com");
        assert_ne!(email, Email::parse("firstlast@example.com").unwrap());
    }

    #[test]
    fn every_dot_atom_special_character_is_accepted_in_the_local_part() {
        let email = Email::parse("!#$%&'*+/=?^_`{|}~-@example.com").unwrap();
        assert_eq!(email.local_part(), "!#$%&'*+/=?^_`{|}~-");
    }

    #[test]
    fn punycode_domains_are_accepted() {
        let email = Email::parse("user@xn--mnchen-3ya.de").unwrap();
        assert_eq!(email.domain(), "xn--mnchen-3ya.de");
    }

    #[test]
    fn empty_and_blank_inputs_are_rejected() {
        assert_eq!(parse_error(""), EmailError::Empty);
        assert_eq!(parse_error("   "), EmailError::Empty);
    }

    #[test]
    fn addresses_longer_than_254_characters_are_rejected() {
        let domain = format!(
            "{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63)
        );
        let longest = format!("{}@{}", "x".repeat(254 - domain.len() - 1), domain);
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
        let too_long = format!("x{longest}");
        assert_eq!(parse_error(&too_long), EmailError::TooLong);
    }

    #[test]
    fn control_characters_and_nul_are_rejected() {
        assert_eq!(
            parse_error("a\0b@example.com"),
            EmailError::ContainsControlCharacter
        );
        assert_eq!(
            parse_error("a\u{7f}@example.com"),
            EmailError::ContainsControlCharacter
        );
        assert_eq!(
            parse_error("a@exa\tmple.com"),
            EmailError::ContainsControlCharacter
        );
    }

    #[test]
    fn inner_whitespace_is_rejected() {
        assert_eq!(
            parse_error("a b@example.com"),
            EmailError::ContainsWhitespace
        );
        assert_eq!(
            parse_error("ab@example\u{a0}.com"),
            EmailError::ContainsWhitespace
        );
    }

    #[test]
    fn a_missing_or_repeated_at_sign_is_rejected() {
        assert_eq!(parse_error("alice.example.com"), EmailError::MissingAtSign);
        assert_eq!(parse_error("a@b@example.com"), EmailError::MultipleAtSigns);
        assert_eq!(
            parse_error("\"a@b\"@example.com"),
            EmailError::MultipleAtSigns
        );
    }

    #[test]
    fn bad_local_parts_are_rejected() {
        assert_eq!(parse_error("@example.com"), EmailError::EmptyLocalPart);
        let long_local_part = format!("{}@example.com", "a".repeat(65));
        assert_eq!(parse_error(&long_local_part), EmailError::LocalPartTooLong);
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        assert_eq!(
            parse_error(".alice@example.com"),
            EmailError::MisplacedDotInLocalPart
        );
        assert_eq!(
            parse_error("alice.@example.com"),
            EmailError::MisplacedDotInLocalPart
        );
        assert_eq!(
            parse_error("al..ice@example.com"),
            EmailError::MisplacedDotInLocalPart
        );
        assert_eq!(
            parse_error("al(ice)@example.com"),
            EmailError::InvalidLocalPartCharacter
        );
        assert_eq!(
            parse_error("\"alice\"@example.com"),
            EmailError::InvalidLocalPartCharacter
        );
        assert_eq!(
            parse_error("al,ice@example.com"),
            EmailError::InvalidLocalPartCharacter
        );
    }

    #[test]
    fn unicode_local_parts_are_rejected() {
        assert_eq!(
            parse_error("jürgen@example.com"),
            EmailError::NonAsciiLocalPart
        );
        assert_eq!(
            parse_error("аlice@example.com"),
            EmailError::NonAsciiLocalPart
        );
    }

    #[test]
    fn bad_domains_are_rejected() {
        assert_eq!(parse_error("alice@"), EmailError::EmptyDomain);
        assert_eq!(parse_error("alice@localhost"), EmailError::DomainWithoutDot);
        assert_eq!(parse_error("alice@münchen.de"), EmailError::NonAsciiDomain);
        assert_eq!(
            parse_error("alice@exa_mple.com"),
            EmailError::InvalidDomainCharacter
        );
        assert_eq!(
            parse_error("alice@[192.0.2.1]"),
            EmailError::InvalidDomainCharacter
        );
        assert_eq!(
            parse_error("alice@.example.com"),
            EmailError::EmptyDomainLabel
        );
        assert_eq!(
            parse_error("alice@example.com."),
            EmailError::EmptyDomainLabel
        );
        assert_eq!(
            parse_error("alice@example..com"),
            EmailError::EmptyDomainLabel
        );
        assert_eq!(
            parse_error("alice@-example.com"),
            EmailError::DomainLabelHyphenAtEdge
        );
        assert_eq!(
            parse_error("alice@example-.com"),
            EmailError::DomainLabelHyphenAtEdge
        );
        assert_eq!(
            parse_error("alice@192.0.2.1"),
            EmailError::NumericTopLevelDomain
        );
        let long_label = format!("alice@{}.com", "a".repeat(64));
        assert_eq!(parse_error(&long_label), EmailError::DomainLabelTooLong);
    }

    #[test]
    fn error_messages_do_not_echo_the_input() {
        let secret_looking_input = "hunter2-Secret!";
        let message = parse_error(secret_looking_input).to_string();
        assert!(!message.contains(secret_looking_input));
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn display_and_serde_use_the_plain_normalised_string() {
        let email = Email::parse("Alice@Example.com").unwrap();
        assert_eq!(email.to_string(), "alice@example.com");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"alice@example.com\""
        );
        let round_tripped: Email = serde_json::from_str("\"Alice@Example.com\"").unwrap();
        assert_eq!(round_tripped, email);
    }

    #[test]
    fn deserialising_an_invalid_address_fails() {
        assert!(serde_json::from_str::<Email>("\"not-an-email\"").is_err());
        assert!(serde_json::from_str::<Email>("42").is_err());
    }

    mod properties {
        //! Parsing never panics, is idempotent, ignores ASCII case and
        //! surrounding whitespace, and accepts every address of the
        //! documented syntax, as its lowercase self.

        use proptest::prelude::*;

        use super::*;

        const ATOM: &str = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]";

        /// Addresses of the documented accepted syntax.
        fn valid_address() -> impl Strategy<Value = String> {
            let local = format!("{ATOM}{{1,20}}(\\.{ATOM}{{1,10}}){{0,2}}");
            let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?";
            let domain = format!("({label}\\.){{1,3}}[a-zA-Z][a-zA-Z0-9]{{1,6}}");
            let regex = |text: &str| proptest::string::string_regex(text).expect("a regex");
            (regex(&local), regex(&domain)).prop_map(|(local, domain)| format!("{local}@{domain}"))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn parsing_any_text_is_idempotent_and_normalised(input in any::<String>()) {
                if let Ok(email) = Email::parse(&input) {
                    prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
                    prop_assert_eq!(email.as_str(), email.as_str().to_lowercase());
                    prop_assert!(email.as_str().len() <= MAX_EMAIL_LENGTH);
                    prop_assert_eq!(email.as_str().matches('@').count(), 1);
                    prop_assert_eq!(format!("{}@{}", email.local_part(), email.domain()), email.as_str());
                    prop_assert_eq!(Email::parse(&input.to_ascii_uppercase()), Ok(email.clone()));
                    let json = serde_json::to_string(&email).unwrap();
                    prop_assert_eq!(serde_json::from_str::<Email>(&json).unwrap(), email);
                }
            }

            #[test]
            fn addresses_of_the_documented_syntax_are_accepted_as_their_lowercase(
                address in valid_address(),
                padding in "[ \t\n]{0,3}",
            ) {
                let email = Email::parse(&format!("{padding}{address}{padding}"));
                prop_assert_eq!(email.map(Email::into_string), Ok(address.to_ascii_lowercase()));
            }

            #[test]
            fn a_second_at_sign_or_a_space_inside_is_refused(
                address in valid_address(),
                at in any::<prop::sample::Index>(),
                inserted in prop::sample::select(vec!["@", " ", "\u{0}", "\u{e9}", ".."]),
            ) {
                let at = at.index(address.len() - 1) + 1;
                let altered = format!("{}{inserted}{}", &address[..at], &address[at..]);
                prop_assert!(Email::parse(&altered).is_err(), "{:?}", altered);
            }
        }
    }
}
