//! Text from the network, cleaned at the boundary: AMI header values, CTI
//! JSON strings and CSV import fields go through [`clean`] before anything
//! else sees them, so what is stored, searched and sent is the same on
//! SQLite and PostgreSQL (which refuses NUL in text) and nothing is lost
//! because of a character.
//!
//! Owns the one rule: control characters (Unicode `Cc`: C0 including NUL,
//! DEL, C1) are dropped, except tab, line feed and carriage return, which
//! become a space so the words on either side stay apart. Everything else —
//! any script, emoji, `<`, `>` and quotes — is kept as it came.

use std::borrow::Cow;

/// `text` with control characters dropped (tab, CR and LF become a space);
/// borrowed when there was nothing to clean.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`clean`] for an owned string: no copy when it is clean already.
pub fn clean_owned(text: String) -> String {
    match clean(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(c) => c,
    }
}

/// [`clean`] for multi-line text (a quoted CSV value over several lines):
/// each line is cleaned, the line feeds between them are kept.
pub fn clean_keeping_lines(text: String) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return text;
    }
    text.split('\n').map(clean).collect::<Vec<_>>().join("\n")
}

/// Whether UTF-8 `bytes` hold a control character other than the CR and LF
/// that end lines: the AMI decoder's cheap test before it cleans a message.
pub fn has_control_within_lines(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    bytes.iter().any(|&b| {
        // C1 controls are U+0080..U+009F: 0xC2 then 0x80..=0x9F in UTF-8.
        let hit = (b < 0x20 && b != b'\r' && b != b'\n')
            || b == 0x7f
            || (prev == 0xc2 && (0x80..=0x9f).contains(&b));
        prev = b;
        hit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_go_and_everything_else_stays() {
        assert!(matches!(clean("Иван <ivan> 'x' 😀"), Cow::Borrowed(_)));
        assert_eq!(clean("Iv\0an"), "Ivan");
        assert_eq!(clean("a\tb\r\nc"), "a b  c");
        assert_eq!(clean("\u{7f}x\u{85}y\u{9f}\u{1b}[31m"), "xy[31m");
        assert_eq!(clean_owned("ok".into()), "ok");
        assert_eq!(clean_owned("\0".into()), "");
        assert_eq!(clean_keeping_lines("a\0\nb\r\n".into()), "a\nb \n");
        assert_eq!(clean_keeping_lines("a\nb".into()), "a\nb");
        assert!(has_control_within_lines(b"Name: a\0b\r\n"));
        assert!(has_control_within_lines("x\u{85}".as_bytes()));
        assert!(has_control_within_lines(b"a\tb"));
        assert!(!has_control_within_lines("Name: Иван\r\n\r\n".as_bytes()));
        // U+0100 is 0xC4 0x80: not a C1 control.
        assert!(!has_control_within_lines("Ā".as_bytes()));
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cleaned_text_has_no_controls_and_cleaning_is_idempotent(s in "\\PC*|[\\x00-\\x{9f}]{0,40}|.*") {
            let once = clean(&s).into_owned();
            prop_assert!(!once.chars().any(char::is_control));
            prop_assert!(!once.contains('\0'));
            prop_assert_eq!(clean(&once).into_owned(), once.clone());
            prop_assert_eq!(has_control_within_lines(s.replace(['\r', '\n'], "").as_bytes()),
                clean(&s.replace(['\r', '\n'], "")) != s.replace(['\r', '\n'], ""));
        }
    }
}
