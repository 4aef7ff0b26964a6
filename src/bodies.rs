//! `Bodies`: what `fetch_all` hands back, every body in one buffer.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::ops::Index;
use std::sync::Arc;

use crate::key::{KeyKind, TextKeys};

/// The response bodies of a [`fetch_all`](crate::FanOutClient::fetch_all) call, by
/// user ID, or by key: `Bodies` (that is, `Bodies<u64>`) for `u64` IDs,
/// `Bodies<String>` for text keys.
///
/// A read-only map from ID to body bytes. The bodies sit end to end in buffers of
/// 1 MiB (a larger body has one to itself), with an index sorted by ID: a million
/// 64-byte bodies take 62 allocations, not a million, and about 24 bytes each on top of
/// their own size, where a `HashMap<u64, Vec<u8>>` needs about 50 to 100. Iteration is
/// in ascending ID order. Text keys sit end to end in one string too (about 8 bytes
/// each on top of their text), and iterate in byte order.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = fanout::FanOutClient::builder("https://api.example.com/users/{id}").build()?;
/// let bodies = client.fetch_all(&[3, 1, 2])?;
/// assert_eq!(bodies.len(), 3);
/// let first: &[u8] = &bodies[1];
/// for (id, body) in &bodies {
///     println!("{id}: {} bytes", body.len());
/// }
/// // Or, when owned buffers are more convenient:
/// let map: std::collections::HashMap<u64, Vec<u8>> = bodies.into_map();
///
/// let logins = client.fetch_all_keys(["carol", "alice", "bob"])?;
/// let alice: &[u8] = &logins["alice"];
/// assert_eq!(logins.get("dave"), None);
/// for (login, body) in &logins {
///     println!("{login}: {} bytes", body.len());
/// }
/// # Ok(()) }
/// ```
///
/// Two `Bodies` are equal when they hold the same bodies under the same IDs, whatever
/// order they arrived in.
pub struct Bodies<K = u64> {
    /// Filled in arrival order and never grown past their capacity, so no body is
    /// ever copied twice.
    chunks: Vec<Vec<u8>>,
    /// Sorted by key, one entry per key.
    index: Vec<Entry>,
    total_bytes: usize,
    /// The text keys, which entries point into; `None` for `u64` IDs.
    keys: Option<Arc<TextKeys>>,
    kind: PhantomData<fn() -> K>,
}

/// Where one body is: `chunks[chunk][start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The ID, or for a text key its position in the call's keys.
    id: u64,
    chunk: u32,
    start: u32,
    len: u64,
}

/// The most a shared chunk holds. Small enough that the unused tail of the last one
/// does not matter, large enough that a million small bodies need few.
const CHUNK_BYTES: usize = 1 << 20;
/// The room a new shared chunk starts with; it doubles as it fills, up to
/// [`CHUNK_BYTES`], so a call of a few small bodies holds a few KiB, not a MiB per
/// worker.
const FIRST_CHUNK_BYTES: usize = 4 << 10;

impl Entry {
    fn body<'a>(&self, chunks: &'a [Vec<u8>]) -> &'a [u8] {
        let start = self.start as usize;
        // Built by `BodiesBuilder::push`, which keeps every entry within its chunk.
        &chunks[self.chunk as usize][start..start + self.len as usize]
    }
}

/// The key of `entry`: its ID, or its text in `keys`.
fn key_of<'a, K: KeyKind>(entry: &Entry, keys: Option<&'a TextKeys>) -> K::Ref<'a> {
    K::key_ref(
        entry.id,
        keys.map_or("", |keys| keys.get(entry.id as usize)),
    )
}

impl<K> Clone for Bodies<K> {
    fn clone(&self) -> Self {
        Bodies {
            chunks: self.chunks.clone(),
            index: self.index.clone(),
            total_bytes: self.total_bytes,
            keys: self.keys.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Default for Bodies<K> {
    fn default() -> Self {
        Bodies {
            chunks: Vec::new(),
            index: Vec::new(),
            total_bytes: 0,
            keys: None,
            kind: PhantomData,
        }
    }
}

impl<K: KeyKind> Bodies<K> {
    /// The number of keys (each distinct key of the call once).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no bodies: the call was given no keys.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// `(key, body)` pairs in ascending key order.
    pub fn iter(&self) -> BodiesIter<'_, K> {
        BodiesIter {
            chunks: &self.chunks,
            keys: self.keys.as_deref(),
            entries: self.index.iter(),
            kind: PhantomData,
        }
    }

    /// The size of all bodies together, in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Each body in its own `Vec`, by key (see [`IntoIterator`] for what is copied).
    pub fn into_map(self) -> HashMap<K, Vec<u8>>
    where
        K: Hash + Eq,
    {
        self.into_iter().collect()
    }
}

impl Bodies<u64> {
    /// The body of `id`, or `None` if the call did not include it.
    pub fn get(&self, id: u64) -> Option<&[u8]> {
        let at = self.index.binary_search_by_key(&id, |e| e.id).ok()?;
        Some(self.index[at].body(&self.chunks))
    }

    /// Whether the call included `id`.
    pub fn contains(&self, id: u64) -> bool {
        self.index.binary_search_by_key(&id, |e| e.id).is_ok()
    }

    /// The IDs, in ascending order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.index.iter().map(|e| e.id)
    }
}

impl Bodies<String> {
    /// The body of `key`, or `None` if the call did not include it.
    ///
    /// ```
    /// let bodies = fanout::Bodies::<String>::default();
    /// assert_eq!(bodies.get("alice"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let at = self.position(key)?;
        Some(self.index[at].body(&self.chunks))
    }

    /// Whether the call included `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// The keys, in ascending byte order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        let keys = self.keys.as_deref();
        self.index.iter().map(move |e| key_of::<String>(e, keys))
    }

    fn position(&self, key: &str) -> Option<usize> {
        let keys = self.keys.as_deref();
        self.index
            .binary_search_by(|e| key_of::<String>(e, keys).cmp(key))
            .ok()
    }
}

/// By contents: the same keys with the same bodies, however the bytes are laid out.
impl<K: KeyKind> PartialEq for Bodies<K> {
    fn eq(&self, other: &Bodies<K>) -> bool {
        // Both iterate in ascending key order, one entry per key.
        self.len() == other.len()
            && self.total_bytes == other.total_bytes
            && self.iter().eq(other.iter())
    }
}

impl<K: KeyKind> Eq for Bodies<K> {}

impl Index<u64> for Bodies<u64> {
    type Output = [u8];

    /// The body of `id`.
    ///
    /// # Panics
    ///
    /// If the call did not include `id`; use [`Bodies::get`] to find out.
    fn index(&self, id: u64) -> &[u8] {
        self.get(id)
            .unwrap_or_else(|| panic!("no body for ID {id} in this result"))
    }
}

impl Index<&str> for Bodies<String> {
    type Output = [u8];

    /// The body of `key`.
    ///
    /// # Panics
    ///
    /// If the call did not include `key`; use [`Bodies::get`] to find out.
    fn index(&self, key: &str) -> &[u8] {
        self.get(key)
            .unwrap_or_else(|| panic!("no body for key {key:?} in this result"))
    }
}

impl<K: KeyKind + Hash + Eq> From<Bodies<K>> for HashMap<K, Vec<u8>> {
    fn from(bodies: Bodies<K>) -> Self {
        bodies.into_map()
    }
}

impl<'a, K: KeyKind> IntoIterator for &'a Bodies<K> {
    type Item = (K::Ref<'a>, &'a [u8]);
    type IntoIter = BodiesIter<'a, K>;

    fn into_iter(self) -> BodiesIter<'a, K> {
        self.iter()
    }
}

/// Owned `(key, body)` pairs in ascending key order.
///
/// A body larger than 1 MiB has a buffer to itself and is moved out of it; the
/// smaller ones share buffers and are copied out, one at a time, as are text keys.
///
/// ```
/// use std::collections::BTreeMap;
///
/// /// The bodies that are UTF-8, as owned strings.
/// fn texts(bodies: fanout::Bodies) -> BTreeMap<u64, String> {
///     bodies
///         .into_iter()
///         .filter_map(|(id, body)| Some((id, String::from_utf8(body).ok()?)))
///         .collect()
/// }
/// assert!(texts(fanout::Bodies::default()).is_empty());
/// ```
impl<K: KeyKind> IntoIterator for Bodies<K> {
    type Item = (K, Vec<u8>);
    type IntoIter = BodiesIntoIter<K>;

    fn into_iter(self) -> BodiesIntoIter<K> {
        BodiesIntoIter {
            chunks: self.chunks,
            keys: self.keys,
            entries: self.index.into_iter(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Bodies<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bodies")
            .field("len", &self.index.len())
            .field("total_bytes", &self.total_bytes)
            .finish()
    }
}

/// The iterator of [`Bodies::iter`]: `(key, body)` in ascending key order.
///
/// Its `Debug` shows how many bodies are left, not their bytes.
pub struct BodiesIter<'a, K = u64> {
    chunks: &'a [Vec<u8>],
    keys: Option<&'a TextKeys>,
    entries: std::slice::Iter<'a, Entry>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for BodiesIter<'_, K> {
    fn clone(&self) -> Self {
        BodiesIter {
            entries: self.entries.clone(),
            kind: PhantomData,
            ..*self
        }
    }
}

impl<'a, K: KeyKind> BodiesIter<'a, K> {
    fn item(&self, entry: &'a Entry) -> (K::Ref<'a>, &'a [u8]) {
        (key_of::<K>(entry, self.keys), entry.body(self.chunks))
    }
}

impl<'a, K: KeyKind> Iterator for BodiesIter<'a, K> {
    type Item = (K::Ref<'a>, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next()?;
        Some(self.item(entry))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }

    /// In constant time, so the `n`th body by key order is a lookup, not a walk.
    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        let entry = self.entries.nth(n)?;
        Some(self.item(entry))
    }
}

impl<K: KeyKind> ExactSizeIterator for BodiesIter<'_, K> {}

impl<K: KeyKind> FusedIterator for BodiesIter<'_, K> {}

impl<K> fmt::Debug for BodiesIter<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodiesIter")
            .field("remaining", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<K: KeyKind> DoubleEndedIterator for BodiesIter<'_, K> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next_back()?;
        Some(self.item(entry))
    }
}

/// The iterator of [`Bodies::into_iter`](IntoIterator::into_iter): owned `(key, body)`
/// pairs in ascending key order.
///
/// Its `Debug` shows how many bodies are left, not their bytes.
pub struct BodiesIntoIter<K = u64> {
    chunks: Vec<Vec<u8>>,
    keys: Option<Arc<TextKeys>>,
    entries: std::vec::IntoIter<Entry>,
    kind: PhantomData<fn() -> K>,
}

impl<K: KeyKind> BodiesIntoIter<K> {
    fn take(&mut self, entry: Entry) -> (K, Vec<u8>) {
        // Only a body over CHUNK_BYTES has a chunk to itself (see
        // `BodiesBuilder::push`), so moving that chunk out takes from no other body.
        let body = if entry.len as usize > CHUNK_BYTES {
            std::mem::take(&mut self.chunks[entry.chunk as usize])
        } else {
            entry.body(&self.chunks).to_vec()
        };
        let text = match &self.keys {
            Some(keys) => keys.get(entry.id as usize).to_owned(),
            None => String::new(),
        };
        (K::from_parts(entry.id, text), body)
    }
}

impl<K: KeyKind> Iterator for BodiesIntoIter<K> {
    type Item = (K, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next()?;
        Some(self.take(entry))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl<K: KeyKind> ExactSizeIterator for BodiesIntoIter<K> {}

impl<K: KeyKind> FusedIterator for BodiesIntoIter<K> {}

impl<K: KeyKind> DoubleEndedIterator for BodiesIntoIter<K> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next_back()?;
        Some(self.take(entry))
    }
}

impl<K> fmt::Debug for BodiesIntoIter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodiesIntoIter")
            .field("remaining", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Bodies as they arrive, in completion order; sorted once, at the end.
#[derive(Debug, Default)]
pub(crate) struct BodiesBuilder {
    bodies: Bodies,
    /// The chunk small bodies are added to.
    shared: Option<usize>,
}

impl BodiesBuilder {
    /// Adds the body of `id`, which must not have been added before.
    pub(crate) fn push(&mut self, id: u64, body: &[u8]) {
        let (chunk, start) = if body.len() > CHUNK_BYTES {
            self.bodies.chunks.push(body.to_vec());
            (self.bodies.chunks.len() - 1, 0)
        } else {
            let at = self.shared_chunk_with_room(body.len());
            let chunk = &mut self.bodies.chunks[at];
            let start = chunk.len();
            if chunk.capacity() - start < body.len() {
                // Entries hold offsets, not pointers, so moving the chunk is fine.
                let room = (chunk.capacity() * 2).clamp(start + body.len(), CHUNK_BYTES);
                chunk.reserve_exact(room - start);
            }
            chunk.extend_from_slice(body);
            (at, start)
        };
        self.bodies.index.push(Entry {
            id,
            // A shared chunk is 1 MiB, and a body with a chunk of its own starts at 0;
            // 2^32 chunks would be 4 PiB.
            chunk: chunk as u32,
            start: start as u32,
            len: body.len() as u64,
        });
        self.bodies.total_bytes += body.len();
    }

    /// The shared chunk, or a new one if `len` more bytes would take it past
    /// [`CHUNK_BYTES`].
    fn shared_chunk_with_room(&mut self, len: usize) -> usize {
        let chunks = &mut self.bodies.chunks;
        match self.shared {
            Some(at) if CHUNK_BYTES - chunks[at].len() >= len => at,
            _ => {
                chunks.push(Vec::with_capacity(FIRST_CHUNK_BYTES.max(len)));
                self.shared = Some(chunks.len() - 1);
                chunks.len() - 1
            }
        }
    }

    /// Room for `ids` index entries: the index is never copied to grow.
    pub(crate) fn with_capacity(ids: usize) -> Self {
        BodiesBuilder {
            bodies: Bodies {
                index: Vec::with_capacity(ids),
                ..Bodies::default()
            },
            shared: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bodies.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// The size of all bodies added, in bytes.
    pub(crate) fn total_bytes(&self) -> usize {
        self.bodies.total_bytes
    }

    /// Moves every body of `other` into this one, leaving `other` empty but with its
    /// index's room, to be filled again.
    pub(crate) fn take_from(&mut self, other: &mut BodiesBuilder) {
        let (ours, theirs) = (&mut self.bodies, &mut other.bodies);
        // Chunk numbers in `other` count from the end of ours.
        let offset = ours.chunks.len() as u32;
        ours.chunks.append(&mut theirs.chunks);
        ours.index.extend(theirs.index.drain(..).map(|entry| Entry {
            chunk: entry.chunk + offset,
            ..entry
        }));
        ours.total_bytes += std::mem::take(&mut theirs.total_bytes);
        other.shared = None;
    }

    /// The bodies of `u64` IDs.
    #[cfg(test)]
    pub(crate) fn build(self) -> Bodies {
        self.finish(None)
    }

    /// The bodies, sorted by key: by ID, or by text when `keys` holds the text keys
    /// that entries point into.
    pub(crate) fn finish<K: KeyKind>(self, keys: Option<Arc<TextKeys>>) -> Bodies<K> {
        let Bodies {
            chunks,
            mut index,
            total_bytes,
            ..
        } = self.bodies;
        match keys.as_deref() {
            Some(text) => {
                index.sort_unstable_by(|a, b| text.get(a.id as usize).cmp(text.get(b.id as usize)))
            }
            None => index.sort_unstable_by_key(|e| e.id),
        }
        Bodies {
            chunks,
            index,
            total_bytes,
            keys,
            kind: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bodies {
        let mut builder = BodiesBuilder::default();
        builder.push(30, b"thirty");
        builder.push(10, b"");
        builder.push(20, b"twenty");
        builder.build()
    }

    #[test]
    fn looks_up_each_body_by_id_whatever_the_arrival_order() {
        let bodies = sample();
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies.get(30), Some(&b"thirty"[..]));
        assert_eq!(bodies.get(10), Some(&b""[..]));
        assert_eq!(&bodies[20], b"twenty");
        assert_eq!(bodies.get(15), None);
        assert!(!bodies.contains(40));
        assert_eq!(bodies.total_bytes(), 12);
    }

    #[test]
    fn iterates_in_id_order_both_ways() {
        let bodies = sample();
        assert_eq!(bodies.ids().collect::<Vec<_>>(), [10, 20, 30]);
        let backwards: Vec<_> = bodies.iter().rev().map(|(id, _)| id).collect();
        assert_eq!(backwards, [30, 20, 10]);
        assert_eq!(bodies.iter().len(), 3);
        assert_eq!(bodies.iter().nth(1), Some((20, &b"twenty"[..])));
        assert_eq!(bodies.iter().nth(3), None);
    }

    #[test]
    fn bodies_fill_chunks_and_a_large_one_gets_its_own() {
        let mut builder = BodiesBuilder::default();
        let half = vec![1u8; CHUNK_BYTES / 2 + 1];
        let large = vec![2u8; CHUNK_BYTES * 2];
        builder.push(1, &half);
        builder.push(2, &half);
        builder.push(3, &large);
        builder.push(4, b"tail");
        let bodies = builder.build();
        assert_eq!(bodies.chunks.len(), 3);
        assert_eq!(bodies.get(1), Some(&half[..]));
        assert_eq!(bodies.get(2), Some(&half[..]));
        assert_eq!(bodies.get(3), Some(&large[..]));
        assert_eq!(bodies.get(4), Some(&b"tail"[..]));
        assert_eq!(bodies.total_bytes(), half.len() * 2 + large.len() + 4);
        assert!(
            bodies
                .chunks
                .iter()
                .all(|c| c.capacity() <= CHUNK_BYTES * 2)
        );
    }

    #[test]
    fn a_few_small_bodies_hold_little_memory() {
        let bodies = sample();
        let held: usize = bodies.chunks.iter().map(Vec::capacity).sum();
        assert!(
            held <= FIRST_CHUNK_BYTES,
            "{held} bytes held for 12 bytes of bodies"
        );

        // Many small bodies fill chunks close to CHUNK_BYTES before starting another.
        let mut builder = BodiesBuilder::default();
        for id in 0..40_000u64 {
            builder.push(id, &[7u8; 64]);
        }
        let bodies = builder.build();
        assert_eq!(bodies.chunks.len(), 3, "64-byte bodies, 2.44 MiB in all");
        assert_eq!(bodies.chunks[0].capacity(), CHUNK_BYTES);
        assert!((0..40_000).all(|id| bodies.get(id) == Some(&[7u8; 64][..])));
    }

    #[test]
    fn converts_to_a_map_of_owned_bodies() {
        let map: HashMap<u64, Vec<u8>> = sample().into();
        assert_eq!(map.len(), 3);
        assert_eq!(map[&20], b"twenty");
    }

    #[test]
    #[should_panic(expected = "no body for ID 99")]
    fn indexing_a_missing_id_panics_with_the_id() {
        let _ = &sample()[99];
    }

    #[test]
    fn equal_whatever_the_arrival_order_and_layout() {
        let mut builder = BodiesBuilder::default();
        builder.push(20, b"twenty");
        builder.push(10, b"");
        builder.push(30, b"thirty");
        let reordered = builder.build();
        assert_eq!(reordered, sample());

        // Two workers' builders merged: the same bodies in other chunks.
        let (mut first, mut second) = (BodiesBuilder::default(), BodiesBuilder::default());
        first.push(30, b"thirty");
        second.push(20, b"twenty");
        second.push(10, b"");
        first.take_from(&mut second);
        let merged = first.build();
        assert_ne!(merged.chunks.len(), sample().chunks.len());
        assert_eq!(merged, sample());
    }

    #[test]
    fn unequal_when_an_id_or_a_body_differs() {
        let other_body = {
            let mut builder = BodiesBuilder::default();
            builder.push(10, b"");
            builder.push(20, b"twentY");
            builder.push(30, b"thirty");
            builder.build()
        };
        assert_ne!(other_body, sample());
        let other_id = {
            let mut builder = BodiesBuilder::default();
            builder.push(10, b"");
            builder.push(21, b"twenty");
            builder.push(30, b"thirty");
            builder.build()
        };
        assert_ne!(other_id, sample());
        // The same bytes, split across IDs differently.
        let other_split = {
            let mut builder = BodiesBuilder::default();
            builder.push(10, b"t");
            builder.push(20, b"wenty");
            builder.push(30, b"thirty");
            builder.build()
        };
        assert_ne!(other_split, sample());
        assert_ne!(Bodies::default(), sample());
        assert_eq!(Bodies::default(), BodiesBuilder::default().build());
    }

    #[test]
    fn debug_counts_bodies_and_never_prints_them() {
        let mut builder = BodiesBuilder::default();
        builder.push(1, &[b'x'; 4096]);
        builder.push(2, b"secret");
        let bodies = builder.build();
        for shown in [
            format!("{bodies:?}"),
            format!("{:?}", bodies.iter()),
            format!("{:?}", bodies.clone().into_iter()),
        ] {
            assert!(shown.len() < 80, "{shown}");
            assert!(
                !shown.contains("secret") && !shown.contains("120"),
                "{shown}"
            );
        }
        let mut iter = bodies.iter();
        iter.next();
        assert_eq!(format!("{iter:?}"), "BodiesIter { remaining: 1, .. }");
    }

    #[test]
    fn owned_iteration_yields_every_body_in_id_order() {
        let mut builder = BodiesBuilder::default();
        let large = vec![2u8; CHUNK_BYTES + 1];
        builder.push(3, &large);
        builder.push(2, b"two");
        builder.push(1, b"one");
        let bodies = builder.build();
        let owned: Vec<(u64, Vec<u8>)> = bodies.clone().into_iter().collect();
        assert_eq!(
            owned,
            [
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (3, large.clone())
            ]
        );

        let mut iter = bodies.into_iter();
        assert_eq!(iter.len(), 3);
        assert_eq!(iter.next_back(), Some((3, large)));
        assert_eq!(iter.next(), Some((1, b"one".to_vec())));
        assert_eq!(iter.next(), Some((2, b"two".to_vec())));
        assert_eq!(iter.next(), None);
    }

    /// Bodies of text keys, pushed in `order` (positions in `keys`).
    fn text_sample(keys: &[&str], order: &[usize]) -> Bodies<String> {
        let keys = Arc::new(TextKeys::distinct(keys.iter()).unwrap());
        let mut builder = BodiesBuilder::default();
        for &at in order {
            builder.push(at as u64, format!("body of {}", keys.get(at)).as_bytes());
        }
        builder.finish(Some(keys))
    }

    #[test]
    fn text_keys_are_looked_up_and_iterated_in_byte_order() {
        let bodies = text_sample(&["bob", "alice", "a/b", "é"], &[2, 0, 3, 1]);
        assert_eq!(bodies.len(), 4);
        assert_eq!(bodies.get("alice"), Some(&b"body of alice"[..]));
        assert_eq!(&bodies["a/b"], b"body of a/b");
        assert_eq!(bodies.get("carol"), None);
        assert!(bodies.contains("é") && !bodies.contains(""));
        assert_eq!(
            bodies.keys().collect::<Vec<_>>(),
            ["a/b", "alice", "bob", "é"]
        );
        let backwards: Vec<&str> = bodies.iter().rev().map(|(key, _)| key).collect();
        assert_eq!(backwards, ["é", "bob", "alice", "a/b"]);
        let owned: HashMap<String, Vec<u8>> = bodies.clone().into_map();
        assert_eq!(owned["bob"], b"body of bob");
        assert_eq!(
            format!("{bodies:?}"),
            format!("Bodies {{ len: 4, total_bytes: {} }}", bodies.total_bytes())
        );
    }

    #[test]
    fn text_bodies_are_equal_by_contents_whatever_the_arrival_order() {
        let keys = ["x", "y", "z"];
        assert_eq!(
            text_sample(&keys, &[0, 1, 2]),
            text_sample(&keys, &[2, 0, 1])
        );
        // Other positions for the same keys: still the same map.
        assert_eq!(
            text_sample(&keys, &[0, 1, 2]),
            text_sample(&["z", "y", "x"], &[1, 2, 0])
        );
        assert_ne!(text_sample(&keys, &[0, 1]), text_sample(&keys, &[0, 2]));
    }

    #[test]
    #[should_panic(expected = "no body for key \"dave\"")]
    fn indexing_a_missing_key_panics_with_the_key() {
        let _ = &text_sample(&["alice"], &[0])["dave"];
    }

    #[test]
    fn empty_bodies_hold_nothing() {
        let bodies = Bodies::<u64>::default();
        assert!(bodies.is_empty());
        assert_eq!(bodies.iter().next(), None);
    }
}
