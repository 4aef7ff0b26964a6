//! Keys from the command line (`1-100,205,alice`) and from key files.
//!
//! A key is numeric when it is a canonical decimal `u64` (see [`crate::key`]); `a-b`
//! is an inclusive range only when both ends are numeric (`1-5`), else it is a key
//! as written (`2024-01-01`, `x-3`, `1-b`). Numeric IDs are kept as ranges and
//! expanded lazily, so `--ids 1-50000000` costs nothing up front: the library reads
//! IDs only as it has room for them (and keeps the set of IDs seen, 8 to 16 bytes
//! each, to skip duplicates). Text keys are held as read.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::BufRead;
use std::ops::RangeInclusive;

use crate::key::numeric;
use crate::shard::Shard;

/// Up to this many distinct IDs, the IDs of a shard are counted one by one (about
/// 0.2 s at most); beyond, the count is an estimate: the hash spreads IDs evenly.
const EXACT_SHARD_COUNT: u64 = 1 << 24;

/// One item of a list: numeric IDs, or one text key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Ids(RangeInclusive<u64>),
    Text(String),
}

/// Keys in the order given; may hold duplicates, which the library fetches once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyList {
    items: Vec<Item>,
}

impl KeyList {
    /// Parses a comma-separated list of keys and inclusive ranges of IDs:
    /// `1-100,205,alice`. Items are trimmed; an empty item is an error.
    pub fn parse_spec(spec: &str) -> Result<KeyList, String> {
        let mut items = Vec::new();
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!("empty item in key list {spec:?}"));
            }
            items.push(parse_item(item)?);
        }
        Ok(KeyList { items })
    }

    /// Reads one key per line, trimmed, taken as written (no ranges). Blank lines and
    /// `#` comments (a line starting with `#`, or the rest of a line from a blank
    /// followed by `#`) are skipped. `source` names the input in error messages,
    /// which also give the line number.
    pub fn parse_lines(reader: impl BufRead, source: &str) -> Result<KeyList, String> {
        let mut items = Vec::new();
        for (index, line) in reader.lines().enumerate() {
            let number = index + 1;
            let line = line.map_err(|e| format!("{source}, line {number}: {e}"))?;
            let content = strip_comment(&line).trim();
            if content.is_empty() {
                continue;
            }
            items.push(match numeric(content) {
                Some(id) => Item::Ids(id..=id),
                None => Item::Text(content.to_owned()),
            });
        }
        Ok(KeyList { items })
    }

    /// Appends `other`'s keys after these.
    pub fn extend(&mut self, other: KeyList) {
        self.items.extend(other.items);
    }

    /// Whether every key is a numeric ID, so that the IDs can be fetched as such.
    pub fn is_numeric(&self) -> bool {
        self.items.iter().all(|item| matches!(item, Item::Ids(_)))
    }

    /// Every numeric ID in order, duplicates included, computed as it is read; text
    /// keys are left out.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges().flat_map(Clone::clone)
    }

    /// Every key's text in order, duplicates included; IDs in decimal.
    pub fn texts(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        self.items.iter().flat_map(|item| {
            let (ids, text) = match item {
                Item::Ids(range) => (Some(range.clone()), None),
                Item::Text(text) => (None, Some(Cow::Borrowed(text.as_str()))),
            };
            ids.into_iter()
                .flatten()
                .map(|id| Cow::Owned(id.to_string()))
                .chain(text)
        })
    }

    fn ranges(&self) -> impl Iterator<Item = &RangeInclusive<u64>> {
        self.items.iter().filter_map(|item| match item {
            Item::Ids(range) => Some(range),
            Item::Text(_) => None,
        })
    }

    /// The distinct text keys (never numeric, so never equal to an ID's text).
    fn distinct_texts(&self) -> HashSet<&str> {
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Text(text) => Some(text.as_str()),
                Item::Ids(_) => None,
            })
            .collect()
    }

    /// The number of distinct keys (saturating at `u64::MAX`).
    pub fn distinct_count(&self) -> u64 {
        let total: u128 = self
            .disjoint_ranges()
            .iter()
            .map(|r| u128::from(r.end() - r.start()) + 1)
            .sum();
        let texts = self.distinct_texts().len() as u128;
        u64::try_from(total + texts).unwrap_or(u64::MAX)
    }

    /// The number of distinct keys in `shard` (all of them without one): exact up to
    /// `EXACT_SHARD_COUNT` distinct IDs in all, an even share of the IDs beyond.
    pub fn distinct_count_in(&self, shard: Option<&Shard>) -> u64 {
        let Some(shard) = shard else {
            return self.distinct_count();
        };
        let texts = self
            .distinct_texts()
            .into_iter()
            .filter(|text| shard.holds_key(text))
            .count() as u64;
        let ids = self.disjoint_ranges();
        let total: u64 = ids
            .iter()
            .map(|r| r.end() - r.start())
            .fold(0, |sum, span| sum.saturating_add(span).saturating_add(1));
        let in_shard = if total > EXACT_SHARD_COUNT {
            total.div_ceil(shard.count())
        } else {
            ids.into_iter()
                .flatten()
                .filter(|&id| shard.holds_id(id))
                .count() as u64
        };
        in_shard.saturating_add(texts)
    }

    /// The same IDs once each, as sorted ranges that do not overlap.
    fn disjoint_ranges(&self) -> Vec<RangeInclusive<u64>> {
        let mut sorted: Vec<(u64, u64)> = self.ranges().map(|r| (*r.start(), *r.end())).collect();
        sorted.sort_unstable();
        let mut disjoint = Vec::new();
        let mut covered_to: Option<u64> = None;
        for (start, end) in sorted {
            // Keep only the part past what earlier ranges covered.
            let from = match covered_to {
                Some(c) if c >= end => continue,
                Some(c) if c >= start => c + 1,
                _ => start,
            };
            disjoint.push(from..=end);
            covered_to = Some(end);
        }
        disjoint
    }
}

/// A line of a key file without its comment: `#` at the start, or after a blank.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    // An ASCII blank is one byte, so `at` is where a character starts.
    match line
        .as_bytes()
        .windows(2)
        .position(|pair| pair[0].is_ascii_whitespace() && pair[1] == b'#')
    {
        Some(at) => &line[..at],
        None => line,
    }
}

/// A range when the item is two numeric IDs joined by `-`, else one key as written.
fn parse_item(item: &str) -> Result<Item, String> {
    if let Some(id) = numeric(item) {
        return Ok(Item::Ids(id..=id));
    }
    let Some((start, end)) = item.split_once('-') else {
        return Ok(Item::Text(item.to_owned()));
    };
    match (numeric(start.trim()), numeric(end.trim())) {
        (Some(start), Some(end)) if start > end => Err(format!("range {item:?} runs backwards")),
        (Some(start), Some(end)) => Ok(Item::Ids(start..=end)),
        _ => Ok(Item::Text(item.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &KeyList) -> Vec<u64> {
        list.ids().collect()
    }

    fn texts(list: &KeyList) -> Vec<String> {
        list.texts().map(Cow::into_owned).collect()
    }

    #[test]
    fn numbers_and_ranges() {
        let list = KeyList::parse_spec("1-3,7, 9 - 10").unwrap();
        assert!(list.is_numeric());
        assert_eq!(ids(&list), [1, 2, 3, 7, 9, 10]);
    }

    #[test]
    fn single_id_range() {
        assert_eq!(ids(&KeyList::parse_spec("5-5").unwrap()), [5]);
    }

    #[test]
    fn extremes() {
        let max = u64::MAX.to_string();
        let list = KeyList::parse_spec(&format!("0,{max}")).unwrap();
        assert_eq!(ids(&list), [0, u64::MAX]);
    }

    #[test]
    fn a_dash_makes_a_range_only_between_two_numbers() {
        let spec = "1-2,alice,2024-01-01,x-3,1-b,-1,1-,1-2-3,007,18446744073709551616";
        let list = KeyList::parse_spec(spec).unwrap();
        assert!(!list.is_numeric());
        assert_eq!(ids(&list), [1, 2]);
        assert_eq!(
            texts(&list),
            spec.replace("1-2,", "1,2,").split(',').collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_specs_are_errors() {
        for spec in ["", "1,", ",1", "a,,b", " ", "3-1"] {
            assert!(KeyList::parse_spec(spec).is_err(), "{spec:?} was accepted");
        }
    }

    #[test]
    fn error_names_the_bad_item() {
        let err = KeyList::parse_spec("9-2").unwrap_err();
        assert!(
            err.contains("\"9-2\"") && err.contains("backwards"),
            "{err}"
        );
        let err = KeyList::parse_spec("a,,b").unwrap_err();
        assert!(
            err.contains("empty item") && err.contains("\"a,,b\""),
            "{err}"
        );
    }

    #[test]
    fn huge_range_is_lazy() {
        let list = KeyList::parse_spec(&format!("0-{}", u64::MAX)).unwrap();
        assert_eq!(list.distinct_count(), u64::MAX);
        assert_eq!(list.ids().take(3).collect::<Vec<_>>(), [0, 1, 2]);
        let list = KeyList::parse_spec(&format!("a,0-{}", u64::MAX)).unwrap();
        assert_eq!(list.texts().take(3).collect::<Vec<_>>(), ["a", "0", "1"]);
    }

    #[test]
    fn distinct_count_merges_overlaps() {
        let list = KeyList::parse_spec("1-10,5-12,3,20,20,11-11,0,a,b,a,010").unwrap();
        // 0..=12 and 20, then a, b and 010
        assert_eq!(list.distinct_count(), 17);
        assert_eq!(KeyList::default().distinct_count(), 0);
    }

    #[test]
    fn shards_count_their_own_distinct_keys() {
        let list = KeyList::parse_spec("1-1000,500-1500,7,k1,k2,k3,k1").unwrap();
        let mut sum = 0;
        for index in 0..4 {
            let shard = crate::shard::ShardArg::parse(&format!("{index}/4"))
                .unwrap()
                .resolve(None)
                .unwrap();
            let expected = (1..=1500).filter(|&id| shard.holds_id(id)).count()
                + ["k1", "k2", "k3"]
                    .iter()
                    .filter(|k| shard.holds_key(k))
                    .count();
            assert_eq!(list.distinct_count_in(Some(&shard)), expected as u64);
            sum += expected;
        }
        assert_eq!(sum, 1503);
        assert_eq!(list.distinct_count_in(None), 1503);
    }

    #[test]
    fn lines_skip_blanks_and_comments() {
        let input = "# users\n1\n\n  2  \n3 # the third\n\t\n  # indented\n";
        let list = KeyList::parse_lines(input.as_bytes(), "ids.txt").unwrap();
        assert!(list.is_numeric());
        assert_eq!(ids(&list), [1, 2, 3]);
    }

    #[test]
    fn lines_are_keys_as_written() {
        let input = "alice\n1-3\na b\na#b\n?x=1\n../admin\ncaf\u{e9} # accented\n42\n";
        let list = KeyList::parse_lines(input.as_bytes(), "keys.txt").unwrap();
        assert!(!list.is_numeric());
        assert_eq!(
            texts(&list),
            [
                "alice",
                "1-3",
                "a b",
                "a#b",
                "?x=1",
                "../admin",
                "caf\u{e9}",
                "42"
            ]
        );
        assert_eq!(ids(&list), [42]);
    }

    #[test]
    fn a_line_that_is_not_text_is_named_by_number() {
        let input: &[u8] = b"1\n2\n\xff\n";
        let err = KeyList::parse_lines(input, "ids.txt").unwrap_err();
        assert!(err.starts_with("ids.txt, line 3: "), "{err}");
    }

    #[test]
    fn extend_appends() {
        let mut list = KeyList::parse_spec("1").unwrap();
        list.extend(KeyList::parse_lines("2\nbob\n".as_bytes(), "f").unwrap());
        assert_eq!(texts(&list), ["1", "2", "bob"]);
    }
}
