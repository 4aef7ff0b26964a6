//! `--shard INDEX/COUNT`: which IDs this process fetches when several share one input.
//!
//! A key belongs to shard `fmix64(FNV-1a-64(text)) mod COUNT`, where `text` is the
//! key's text form as UTF-8 (for a numeric ID, its decimal digits, no sign or leading
//! zeros) and `fmix64` is MurmurHash3's 64-bit finalizer. The hash is fixed, not std's
//! randomly seeded one, so every process and every version agrees on the partition.
//! The finalizer is there because FNV-1a alone mixes short keys poorly: its low bits
//! depend only on the low bits of each byte, and its high bits put the IDs 0 to 9 in
//! one of four shards.

use std::fmt;

/// The environment variable `--shard auto/COUNT` reads INDEX from: Kubernetes sets it
/// in each pod of an Indexed Job.
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

const FORM: &str = "INDEX/COUNT with 0 <= INDEX < COUNT, or auto/COUNT";

/// A `--shard` as given: the index may still have to come from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardArg {
    index: Option<u64>,
    count: u64,
}

impl ShardArg {
    /// Parses `INDEX/COUNT` or `auto/COUNT`.
    pub fn parse(text: &str) -> Result<ShardArg, String> {
        let bad = || format!("expected {FORM}");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(bad());
        }
        let index = match index.trim() {
            "auto" => None,
            index => Some(parse_index(index, count).ok_or_else(bad)?),
        };
        Ok(ShardArg { index, count })
    }

    /// The shard, with an `auto` index read from `variable`'s value (`None` when it
    /// is not set).
    pub fn resolve(self, variable: Option<&str>) -> Result<Shard, String> {
        let index = match (self.index, variable) {
            (Some(index), _) => index,
            (None, None) => {
                return Err(format!(
                    "--shard auto/{} takes INDEX from ${INDEX_VARIABLE}, which is not set",
                    self.count
                ));
            }
            (None, Some(value)) => parse_index(value, self.count).ok_or_else(|| {
                format!(
                    "--shard auto/{count}: ${INDEX_VARIABLE} is {value:?}, not an index \
                     from 0 to {last}",
                    count = self.count,
                    last = self.count - 1
                )
            })?,
        };
        Ok(Shard {
            index,
            count: self.count,
        })
    }
}

fn parse_index(text: &str, count: u64) -> Option<u64> {
    text.trim().parse().ok().filter(|&index| index < count)
}

/// One part of a stable partition of keys into `count` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// The shard a key with this text belongs to.
    pub fn of_key(text: &str, count: u64) -> u64 {
        key_hash(text) % count
    }

    /// How many shards the keys are split into.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether the key with this text is in this shard.
    pub fn holds_key(&self, text: &str) -> bool {
        Self::of_key(text, self.count) == self.index
    }

    /// Whether a numeric ID is in this shard: its key text is its decimal form.
    pub fn holds_id(&self, id: u64) -> bool {
        self.holds_key(DecimalText::new(id).as_str())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The hash that places a key: FNV-1a, then MurmurHash3's `fmix64`.
fn key_hash(text: &str) -> u64 {
    let mut hash = fnv1a_64(text.as_bytes());
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// FNV-1a, 64 bits: offset basis 0xcbf29ce484222325, prime 0x100000001b3.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A number's decimal digits, without allocating: IDs are sharded one by one.
struct DecimalText {
    digits: [u8; 20],
    start: usize,
}

impl DecimalText {
    fn new(mut n: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        DecimalText { digits, start }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_64() {
        // Reference values of the FNV-1a 64 specification.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_partition_never_changes() {
        // Pinned: a change here splits a running job differently across versions.
        assert_eq!(key_hash(""), 0xefd0_1f60_ba99_2926);
        assert_eq!(key_hash("0"), 0xc1e4_2af0_88ff_1b2c);
        assert_eq!(key_hash("alice"), 0x3507_d047_a67c_08f4);
        let shards: Vec<u64> = (0..12)
            .map(|id| Shard::of_key(&id.to_string(), 4))
            .collect();
        assert_eq!(shards, [0, 2, 2, 2, 0, 1, 1, 3, 2, 2, 3, 2]);
    }

    #[test]
    fn decimal_text_is_the_display_form() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            assert_eq!(DecimalText::new(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn every_id_is_in_exactly_one_shard() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut sizes = [0u32; 4];
        for id in 0..10_000 {
            let holders: Vec<usize> = (0..4).filter(|&i| shards[i].holds_id(id)).collect();
            assert_eq!(holders.len(), 1, "id {id}");
            sizes[holders[0]] += 1;
        }
        for size in sizes {
            assert!((2_200..2_800).contains(&size), "{sizes:?}");
        }
    }

    #[test]
    fn one_shard_holds_everything() {
        let all = ShardArg::parse("0/1").unwrap().resolve(None).unwrap();
        assert!((0..1000).all(|id| all.holds_id(id)));
    }

    #[test]
    fn good_forms() {
        let shard = ShardArg::parse("3/4").unwrap().resolve(None).unwrap();
        assert_eq!(shard.to_string(), "3/4");
        let auto = ShardArg::parse("auto/4").unwrap();
        assert_eq!(auto.resolve(Some("2")).unwrap().to_string(), "2/4");
    }

    #[test]
    fn bad_forms_name_the_accepted_form() {
        for text in [
            "4/4", "0/0", "x/2", "1", "", "/2", "1/", "-1/2", "auto", "1/2/3",
        ] {
            let err = ShardArg::parse(text).unwrap_err();
            assert!(err.contains("INDEX/COUNT"), "{text:?}: {err}");
        }
    }

    #[test]
    fn auto_needs_a_valid_variable() {
        let auto = ShardArg::parse("auto/4").unwrap();
        let err = auto.resolve(None).unwrap_err();
        assert!(err.contains("JOB_COMPLETION_INDEX"), "{err}");
        for value in ["4", "x", "", "-1"] {
            let err = auto.resolve(Some(value)).unwrap_err();
            assert!(err.contains("JOB_COMPLETION_INDEX"), "{value:?}: {err}");
        }
    }
}
