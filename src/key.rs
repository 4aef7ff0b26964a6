//! Keys: what a call fetches, `u64` IDs or text, and how a call holds text keys.
//!
//! The call path itself is not generic: a key is turned into a [`KeyRef`] at the edge,
//! and workers claim positions in the call's list of keys.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::rc::Rc;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::error::{ErrorKind, FetchError};

mod sealed {
    /// Keeps [`Key`](super::Key) and [`KeyKind`](super::KeyKind) to the types below:
    /// the call path knows only these two kinds of key.
    pub trait Sealed {}
}

/// A key that [`fetch_all_keys`](crate::FanOutClient::fetch_all_keys) and
/// [`fetch_iter_keys`](crate::FanOutClient::fetch_iter_keys) take: a `u64` ID, or
/// text.
///
/// Implemented for `u64`, `str`, `String`, `Box<str>`, `Arc<str>`, `Rc<str>`,
/// `Cow<str>` and references to any of them, so a slice, a `Vec`, a range or an
/// iterator of any of these can be passed as they are. Sealed: it cannot be
/// implemented outside this crate.
///
/// A `u64` ID goes into the URL as its decimal digits. A text key is
/// percent-encoded for where `{id}` stands (see [`UrlTemplate`](crate::UrlTemplate)),
/// so that no key can change the URL's structure; an empty text key is refused with
/// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
///
/// Results are keyed by [`Key::Kind`]: `u64` for IDs, `String` for text.
/// ([`fetch_all`](crate::FanOutClient::fetch_all) and
/// [`fetch_iter`](crate::FanOutClient::fetch_iter) take `u64` IDs only, so that an
/// empty list such as `&[]` needs no type.)
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}").build()?;
/// let by_id: fanout::Bodies = client.fetch_all_keys([1, 2, 3])?;
/// let by_login: fanout::Bodies<String> = client.fetch_all_keys(["alice", "bob"])?;
/// println!("{} bytes for alice", by_login["alice"].len());
/// # Ok(()) }
/// ```
pub trait Key: sealed::Sealed {
    /// What results are keyed by: `u64` for IDs, `String` for text keys.
    type Kind: KeyKind;

    /// The ID, for a `u64` key; 0 for a text key. Used by this crate only.
    #[doc(hidden)]
    fn id(&self) -> u64;

    /// The text, for a text key; `""` for a `u64` key. Used by this crate only.
    #[doc(hidden)]
    fn text(&self) -> &str;

    /// The text, owned. Used by this crate only.
    #[doc(hidden)]
    fn into_text(self) -> String
    where
        Self: Sized,
    {
        self.text().to_owned()
    }
}

/// What results are keyed by: `u64` for `u64` IDs, `String` for text keys. Sealed.
pub trait KeyKind: sealed::Sealed + Sized + Send + 'static {
    /// A key as results lend it: `u64`, or `&str`.
    type Ref<'a>: Copy + fmt::Debug + PartialEq;

    /// Whether keys of this kind are text. Used by this crate only.
    #[doc(hidden)]
    const TEXT: bool;

    /// A key from its ID or its text, whichever this kind is. Used by this crate only.
    #[doc(hidden)]
    fn key_ref(id: u64, text: &str) -> Self::Ref<'_>;

    /// A key from its ID or its text, whichever this kind is. Used by this crate only.
    #[doc(hidden)]
    fn from_parts(id: u64, text: String) -> Self;
}

impl sealed::Sealed for u64 {}

impl Key for u64 {
    type Kind = u64;

    fn id(&self) -> u64 {
        *self
    }

    fn text(&self) -> &str {
        ""
    }
}

impl KeyKind for u64 {
    type Ref<'a> = u64;
    const TEXT: bool = false;

    fn key_ref(id: u64, _: &str) -> u64 {
        id
    }

    fn from_parts(id: u64, _: String) -> u64 {
        id
    }
}

impl KeyKind for String {
    type Ref<'a> = &'a str;
    const TEXT: bool = true;

    fn key_ref(_: u64, text: &str) -> &str {
        text
    }

    fn from_parts(_: u64, text: String) -> String {
        text
    }
}

/// Text keys: `str` and the types that own or share one.
macro_rules! text_keys {
    ($($ty:ty $(=> $into:expr)?),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}

        impl Key for $ty {
            type Kind = String;

            fn id(&self) -> u64 {
                0
            }

            fn text(&self) -> &str {
                self
            }

            $(
                fn into_text(self) -> String {
                    $into(self)
                }
            )?
        }
    )*};
}

text_keys! {
    str,
    String => |s: String| s,
    Box<str> => |s: Box<str>| s.into_string(),
    Arc<str>,
    Rc<str>,
    Cow<'_, str> => |s: Cow<'_, str>| s.into_owned(),
}

impl<K: Key + ?Sized> sealed::Sealed for &K {}

impl<K: Key + ?Sized> Key for &K {
    type Kind = K::Kind;

    fn id(&self) -> u64 {
        (**self).id()
    }

    fn text(&self) -> &str {
        (**self).text()
    }
}

/// One key, as the call path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyRef<'a> {
    Id(u64),
    Text(&'a str),
}

impl KeyRef<'_> {
    /// Refuses a key that can make no URL (an empty one), before any request.
    pub(crate) fn check(self) -> Result<(), FetchError> {
        match self {
            KeyRef::Text("") => Err(self.refused()),
            _ => Ok(()),
        }
    }

    /// The error of an empty key, which makes no URL.
    pub(crate) fn refused(self) -> FetchError {
        FetchError::new(ErrorKind::InvalidKey)
            .with_key(self)
            .with_detail("empty")
    }
}

/// Logged as `user_id`, a number or a string, whichever the key is.
impl log::kv::ToValue for KeyRef<'_> {
    fn to_value(&self) -> log::kv::Value<'_> {
        match *self {
            KeyRef::Id(id) => log::kv::Value::from(id),
            KeyRef::Text(text) => log::kv::Value::from(text),
        }
    }
}

/// The distinct text keys of a `fetch_all` call, in their first order, end to end in
/// one string: two allocations for a million keys, and about 8 bytes each on top of
/// their text.
#[derive(Debug, Default)]
pub(crate) struct TextKeys {
    text: String,
    /// Where each key ends in `text`; it starts where the one before ends.
    ends: Vec<usize>,
}

impl TextKeys {
    /// `keys` without repeats, in their first order; an empty key is refused.
    pub(crate) fn distinct<I>(keys: I) -> Result<Self, FetchError>
    where
        I: Iterator,
        I::Item: Key,
    {
        let mut distinct = TextKeys {
            text: String::new(),
            ends: Vec::with_capacity(keys.size_hint().0),
        };
        // Positions in `distinct`, hashed by their text: the text is held once.
        let mut seen = HashTable::<usize>::with_capacity(keys.size_hint().0);
        let hasher = RandomState::new();
        for key in keys {
            let key = key.text();
            KeyRef::Text(key).check()?;
            let hash = hasher.hash_one(key);
            if seen.find(hash, |&at| distinct.get(at) == key).is_some() {
                continue;
            }
            distinct.text.push_str(key);
            distinct.ends.push(distinct.text.len());
            let at = distinct.ends.len() - 1;
            seen.insert_unique(hash, at, |&at| hasher.hash_one(distinct.get(at)));
        }
        distinct.text.shrink_to_fit();
        Ok(distinct)
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The key at `at`, which must be below [`len`](Self::len).
    pub(crate) fn get(&self, at: usize) -> &str {
        let start = at.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.text[start..self.ends[at]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keeps_the_first_of_each_key_in_order() {
        let keys = TextKeys::distinct(["b", "a", "b", "ccc", "a"].iter()).unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!([keys.get(0), keys.get(1), keys.get(2)], ["b", "a", "ccc"]);
    }

    #[test]
    fn distinct_refuses_an_empty_key() {
        let err = TextKeys::distinct(["a", ""].into_iter()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidKey);
        assert_eq!(err.key(), Some(""));
        assert_eq!(err.to_string(), "key \"\": invalid key (empty)");
    }

    #[test]
    fn every_string_type_is_a_key_of_the_same_kind() {
        fn text<K: Key<Kind = String>>(key: K) -> String {
            key.into_text()
        }
        assert_eq!(text("a"), "a");
        assert_eq!(text(String::from("b")), "b");
        assert_eq!(text(Box::<str>::from("c")), "c");
        assert_eq!(text(Arc::<str>::from("d")), "d");
        let shared = Rc::<str>::from("e");
        assert_eq!(text(&shared), "e");
        assert_eq!(text(Cow::Borrowed("f")), "f");
        assert_eq!(7u64.id(), 7);
    }
}
