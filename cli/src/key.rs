//! One key as the command line names it: a numeric ID or text, in JSON and as an
//! `--out-dir` file name.
//!
//! A key is numeric when its text is the canonical decimal form of a `u64` (`0`,
//! `42`, not `042` or `+42`): only then does `"id"` carry it as a number, and only
//! such keys are fetched as IDs.
//!
//! File names: every byte of the key's UTF-8 outside `[A-Za-z0-9_.-]`, and a leading
//! `.`, is written `%XX` (upper-case hex). The mapping is one-to-one (`%` itself is
//! escaped) and reversible, a numeric ID's name is its digits, and no name is `.`,
//! `..`, holds a `/`, or starts with `.` as the temporary files do.

use std::borrow::Cow;
use std::fmt::Write as _;

use fanout::FetchError;

/// A key: a numeric ID, or text that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A key whose text is a canonical decimal `u64`.
    Id(u64),
    /// Any other key.
    Text(String),
}

impl Key {
    /// The key with this text: an [`Id`](Key::Id) when the text is a canonical number.
    pub fn from_text(text: String) -> Key {
        match numeric(&text) {
            Some(id) => Key::Id(id),
            None => Key::Text(text),
        }
    }

    /// The key a failure concerns, or `None` when the whole run was stopped.
    pub fn of_error(err: &FetchError) -> Option<Key> {
        match (err.user_id(), err.key()) {
            (Some(id), _) => Some(Key::Id(id)),
            (None, Some(text)) => Some(Key::from_text(text.to_owned())),
            (None, None) => None,
        }
    }

    /// The number, for a numeric key.
    pub fn id(&self) -> Option<u64> {
        match self {
            Key::Id(id) => Some(*id),
            Key::Text(_) => None,
        }
    }

    /// The key's text: a numeric ID's decimal form.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Key::Id(id) => Cow::Owned(id.to_string()),
            Key::Text(text) => Cow::Borrowed(text),
        }
    }

    /// The key's `--out-dir` file name (see the module docs).
    pub fn file_name(&self) -> String {
        match self {
            Key::Id(id) => id.to_string(),
            Key::Text(text) => file_name(text),
        }
    }
}

/// The number whose canonical decimal form `text` is, if it is one.
pub fn numeric(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

/// The file name of the key `text`: see the module docs.
pub fn file_name(text: &str) -> String {
    let mut name = String::with_capacity(text.len());
    for (at, byte) in text.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric()
            || byte == b'_'
            || byte == b'-'
            || (byte == b'.' && at > 0);
        if plain {
            name.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(name, "%{byte:02X}");
        }
    }
    name
}

/// The key text whose file name is `name`, or `None` if no key has this name (a file
/// that is not ours).
pub fn from_file_name(name: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(name.len());
    let mut rest = name.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(after.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    // Only the one name each key has: `%2e`, `%41` or a bare `.x` are not ours.
    (!text.is_empty() && file_name(&text) == name).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_numbers_are_numeric() {
        assert_eq!(numeric("0"), Some(0));
        assert_eq!(numeric("42"), Some(42));
        assert_eq!(numeric(&u64::MAX.to_string()), Some(u64::MAX));
        for text in ["", "042", "+42", "-1", "4 2", "18446744073709551616", "x"] {
            assert_eq!(numeric(text), None, "{text:?}");
        }
    }

    #[test]
    fn numeric_ids_keep_their_file_names() {
        assert_eq!(Key::Id(7).file_name(), "7");
        assert_eq!(Key::from_text("7".into()), Key::Id(7));
        assert_eq!(Key::from_text("007".into()).file_name(), "007");
    }

    #[test]
    fn hostile_keys_get_safe_distinct_names_that_read_back() {
        let keys = [
            "../admin",
            "a/b",
            "?x=1",
            "#f",
            "a b",
            "caf\u{e9}",
            ".",
            "..",
            ".hidden",
            "a.b",
            "%41",
            "A",
            "a%2Fb",
            ".fanout-x.part",
            "\\",
            "a\0b",
            "1-b",
        ];
        let mut names = std::collections::HashSet::new();
        for key in keys {
            let name = file_name(key);
            assert!(
                !name.is_empty() && !name.starts_with('.'),
                "{key:?} -> {name}"
            );
            assert!(
                !name.contains('/') && !name.contains('\0'),
                "{key:?} -> {name}"
            );
            assert!(names.insert(name.clone()), "{key:?} collides as {name}");
            assert_eq!(from_file_name(&name).as_deref(), Some(key), "{name}");
        }
        assert_eq!(file_name("../admin"), "%2E.%2Fadmin");
        assert_eq!(file_name("caf\u{e9}"), "caf%C3%A9");
    }

    #[test]
    fn names_no_key_has_are_not_read_as_keys() {
        for name in ["%2e", "%4", "%zz", "%41", "a b", ".x", "%FF", ""] {
            assert_eq!(from_file_name(name), None, "{name:?}");
        }
    }
}
