//! User IDs from the command line (`1-100,205`) and from ID files.
//!
//! IDs are kept as inclusive ranges and expanded lazily, so `--ids 1-50000000` costs
//! nothing up front: the library reads IDs only as it has room for them (and keeps
//! the set of IDs seen, 8 to 16 bytes each, to skip duplicates).

use std::io::BufRead;
use std::ops::RangeInclusive;

use crate::shard::Shard;

/// Up to this many distinct IDs, the IDs of a shard are counted one by one (about
/// 0.2 s at most); beyond, the count is an estimate: the hash spreads IDs evenly.
const EXACT_SHARD_COUNT: u64 = 1 << 24;

/// IDs in the order given, as inclusive ranges; may hold duplicates, which the
/// library fetches once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList {
    ranges: Vec<RangeInclusive<u64>>,
}

impl IdList {
    /// Parses a comma-separated list of IDs and inclusive ranges: `1-100,205`.
    pub fn parse_spec(spec: &str) -> Result<IdList, String> {
        let mut ranges = Vec::new();
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!("empty item in ID list {spec:?}"));
            }
            ranges.push(parse_item(item)?);
        }
        Ok(IdList { ranges })
    }

    /// Reads one ID per line; blank lines and `#` comments are skipped. `source`
    /// names the input in error messages, which also give the line number.
    pub fn parse_lines(reader: impl BufRead, source: &str) -> Result<IdList, String> {
        let mut ranges = Vec::new();
        for (index, line) in reader.lines().enumerate() {
            let number = index + 1;
            let line = line.map_err(|e| format!("{source}, line {number}: {e}"))?;
            let content = line.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let id = parse_id(content).map_err(|e| format!("{source}, line {number}: {e}"))?;
            ranges.push(id..=id);
        }
        Ok(IdList { ranges })
    }

    /// Appends `other`'s IDs after these.
    pub fn extend(&mut self, other: IdList) {
        self.ranges.extend(other.ranges);
    }

    /// Every ID in order, duplicates included, computed as it is read.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(Clone::clone)
    }

    /// The number of distinct IDs (saturating at `u64::MAX`).
    pub fn distinct_count(&self) -> u64 {
        let total: u128 = self
            .disjoint_ranges()
            .iter()
            .map(|r| u128::from(r.end() - r.start()) + 1)
            .sum();
        u64::try_from(total).unwrap_or(u64::MAX)
    }

    /// The number of distinct IDs in `shard` (all of them without one): exact up to
    /// `EXACT_SHARD_COUNT` distinct IDs in all, an even share of them beyond.
    pub fn distinct_count_in(&self, shard: Option<&Shard>) -> u64 {
        let Some(shard) = shard else {
            return self.distinct_count();
        };
        let total = self.distinct_count();
        if total > EXACT_SHARD_COUNT {
            return total.div_ceil(shard.count());
        }
        self.disjoint_ranges()
            .into_iter()
            .flatten()
            .filter(|&id| shard.holds_id(id))
            .count() as u64
    }

    /// The same IDs once each, as sorted ranges that do not overlap.
    fn disjoint_ranges(&self) -> Vec<RangeInclusive<u64>> {
        let mut sorted: Vec<(u64, u64)> =
            self.ranges.iter().map(|r| (*r.start(), *r.end())).collect();
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

fn parse_item(item: &str) -> Result<RangeInclusive<u64>, String> {
    // A leading '-' is a negative number, not a range with no start.
    match item.get(1..).and_then(|rest| rest.find('-')).map(|i| i + 1) {
        Some(dash) => {
            let (start, end) = (item[..dash].trim(), item[dash + 1..].trim());
            let (start, end) = (parse_id(start)?, parse_id(end)?);
            if start > end {
                return Err(format!("range {item:?} runs backwards"));
            }
            Ok(start..=end)
        }
        None => parse_id(item).map(|id| id..=id),
    }
}

fn parse_id(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| {
        format!(
            "{text:?} is not an ID (a whole number from 0 to {})",
            u64::MAX
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &IdList) -> Vec<u64> {
        list.iter().collect()
    }

    #[test]
    fn numbers_and_ranges() {
        let list = IdList::parse_spec("1-3,7, 9 - 10").unwrap();
        assert_eq!(ids(&list), [1, 2, 3, 7, 9, 10]);
    }

    #[test]
    fn single_id_range() {
        assert_eq!(ids(&IdList::parse_spec("5-5").unwrap()), [5]);
    }

    #[test]
    fn extremes() {
        let max = u64::MAX.to_string();
        let list = IdList::parse_spec(&format!("0,{max}")).unwrap();
        assert_eq!(ids(&list), [0, u64::MAX]);
    }

    #[test]
    fn bad_specs_are_errors() {
        for spec in [
            "",
            "1,",
            ",1",
            "a",
            "1-",
            "-1",
            "3-1",
            "1-2-3",
            "1.5",
            "18446744073709551616",
        ] {
            assert!(IdList::parse_spec(spec).is_err(), "{spec:?} was accepted");
        }
    }

    #[test]
    fn error_names_the_bad_item() {
        let err = IdList::parse_spec("1,x7").unwrap_err();
        assert!(err.contains("\"x7\""), "{err}");
        let err = IdList::parse_spec("9-2").unwrap_err();
        assert!(err.contains("backwards"), "{err}");
    }

    #[test]
    fn huge_range_is_lazy() {
        let list = IdList::parse_spec(&format!("0-{}", u64::MAX)).unwrap();
        assert_eq!(list.distinct_count(), u64::MAX);
        assert_eq!(list.iter().take(3).collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn distinct_count_merges_overlaps() {
        let list = IdList::parse_spec("1-10,5-12,3,20,20,11-11,0").unwrap();
        // 0..=12 and 20
        assert_eq!(list.distinct_count(), 14);
        assert_eq!(IdList::default().distinct_count(), 0);
    }

    #[test]
    fn shards_count_their_own_distinct_ids() {
        let list = IdList::parse_spec("1-1000,500-1500,7").unwrap();
        let mut sum = 0;
        for index in 0..4 {
            let shard = crate::shard::ShardArg::parse(&format!("{index}/4"))
                .unwrap()
                .resolve(None)
                .unwrap();
            let expected = (1..=1500).filter(|&id| shard.holds_id(id)).count() as u64;
            assert_eq!(list.distinct_count_in(Some(&shard)), expected);
            sum += expected;
        }
        assert_eq!(sum, 1500);
        assert_eq!(list.distinct_count_in(None), 1500);
    }

    #[test]
    fn lines_skip_blanks_and_comments() {
        let input = "# users\n1\n\n  2  \n3 # the third\n\t\n";
        let list = IdList::parse_lines(input.as_bytes(), "ids.txt").unwrap();
        assert_eq!(ids(&list), [1, 2, 3]);
    }

    #[test]
    fn bad_line_is_named_by_number() {
        let input = "1\n2\n# fine\nthree\n";
        let err = IdList::parse_lines(input.as_bytes(), "ids.txt").unwrap_err();
        assert!(err.starts_with("ids.txt, line 4: "), "{err}");
        assert!(err.contains("\"three\""), "{err}");
    }

    #[test]
    fn ranges_are_not_allowed_in_files() {
        let err = IdList::parse_lines("1-3\n".as_bytes(), "f").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn extend_appends() {
        let mut list = IdList::parse_spec("1").unwrap();
        list.extend(IdList::parse_lines("2\n".as_bytes(), "f").unwrap());
        assert_eq!(ids(&list), [1, 2]);
    }
}
