//! Names people give things: their display name, an org, a personal access
//! token, a security key. One check for all of them, because each is shown
//! to someone else (the operator's user list, an audit record, an approval
//! notice, a confirmation prompt) who must see what it really says.
//!
//! Besides length and control characters, it refuses the characters that
//! make text display as something it is not: bidirectional overrides,
//! embeddings and isolates (`U+202A`–`U+202E`, `U+2066`–`U+2069`), the
//! direction marks (`U+200E`, `U+200F`, and the Arabic letter mark
//! `U+061C`), and zero-width characters (`U+200B`–`U+200D`, `U+2060`,
//! `U+FEFF`). With them, "Admin\u{202E}nimdA" or an invisible twin of
//! another org's name could pass for something else ("Trojan Source",
//! CVE-2021-42574). The zero-width joiner and non-joiner also shape
//! emoji sequences and some scripts (Persian uses the non-joiner); a name
//! written without them still reads, one displayed falsely does not.

/// Why a name was refused; `Display` is the message of the field error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error(
        "must not contain invisible or text-direction characters \
         (zero-width spaces and joiners, bidi overrides, isolates or marks)"
    )]
    InvisibleCharacter,
}

/// `name` without surrounding whitespace, if it is at most `max_chars`
/// characters and has no control, invisible or text-direction character.
/// An empty result is the caller's to judge (some names are optional).
pub fn check_name(name: &str, max_chars: usize) -> Result<&str, NameError> {
    let name = name.trim();
    if name.chars().count() > max_chars {
        return Err(NameError::TooLong(max_chars));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if name.chars().any(is_invisible_or_bidi) {
        return Err(NameError::InvisibleCharacter);
    }
    Ok(name)
}

/// The characters that change how the text around them is displayed, or
/// are not displayed at all.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_trimmed_whatever_their_script() {
        assert_eq!(check_name("  Alice Dupont ", 200), Ok("Alice Dupont"));
        for name in ["Zoë", "山田太郎", "שרה", "محمد", "Ops 🛠", ""] {
            assert_eq!(check_name(name, 200), Ok(name), "{name}");
        }
    }

    #[test]
    fn direction_overrides_isolates_marks_and_zero_width_characters_are_refused() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}', '\u{200C}',
            '\u{200D}', '\u{2060}', '\u{FEFF}',
        ] {
            let name = format!("Admin{c}Team");
            assert_eq!(
                check_name(&name, 200),
                Err(NameError::InvisibleCharacter),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn length_and_control_characters_are_checked_too() {
        assert_eq!(check_name(&"é".repeat(5), 5), Ok("ééééé"));
        assert_eq!(check_name(&"é".repeat(6), 5), Err(NameError::TooLong(5)));
        assert_eq!(
            check_name("a\r\nX-Injected: 1", 200),
            Err(NameError::ControlCharacter)
        );
    }
}
