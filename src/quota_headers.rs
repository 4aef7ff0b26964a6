//! What a response says about the server's quota: `Retry-After`, and the three families of rate-limit headers.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::http::HeaderMap;

/// The longest wait any header is taken to ask for: a longer one is read as this.
const MAX_WAIT: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// List members kept from one field; servers state a handful of policies, and a hostile
/// one must not make us store thousands.
const MAX_MEMBERS: usize = 16;

/// An `X-RateLimit-Reset` from here up (2001-09-09 as a Unix time) is a Unix time; below
/// it, a number of seconds.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// Which family of headers a quota was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderFamily {
    /// `RateLimit-Policy` and `RateLimit` as Lists of named items
    /// (draft-ietf-httpapi-ratelimit-headers-11).
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
    XRateLimit,
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, or the older drafts'
    /// single `RateLimit: limit=.., remaining=.., reset=..` Dictionary.
    RateLimitLegacy,
}

/// What one response said about the server's quota.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerQuota {
    /// The family of headers this was read from.
    pub(crate) family: HeaderFamily,
    /// Refill rate stated by a policy, in requests per second: IETF `q / w`. None for the
    /// other families (they state no window), and for an IETF policy without `w`.
    pub(crate) policy_rate: Option<f64>,
    /// The quota's size: IETF `q`, `X-RateLimit-Limit`, `RateLimit-Limit`.
    pub(crate) limit: Option<u64>,
    /// What is left, as of the response.
    pub(crate) remaining: Option<u64>,
    /// How long from the response until the quota resets / is restored.
    pub(crate) reset: Option<Duration>,
}

/// Reads the quota headers of a response; None when it has none (or only malformed ones).
///
/// When several families are present, the IETF fields win, then `RateLimit-*`, then
/// `X-RateLimit-*`; a family whose headers are all malformed counts as absent.
///
/// `now` is asked only when a reset given as a Unix time needs it, so that the many
/// answers without quota headers cost no clock read.
pub(crate) fn read(headers: &HeaderMap, now: impl FnOnce() -> SystemTime) -> Option<ServerQuota> {
    // Most answers carry none of these: one pass over the names, instead of a lookup
    // per field name, keeps that case cheap.
    let any = headers.keys().any(|name| {
        let name = name.as_str();
        name.starts_with("ratelimit") || name.starts_with("x-ratelimit")
    });
    if !any {
        return None;
    }
    ietf(headers)
        .or_else(|| legacy(headers))
        .or_else(|| x_ratelimit(headers, now()))
}

/// `Retry-After`, in either form: delta-seconds or an HTTP-date (IMF-fixdate, and the
/// obsolete RFC 850 and asctime forms, as RFC 9110 requires recipients to accept). A date
/// in the past is `Duration::ZERO`. None when absent or malformed.
///
/// Waits longer than 366 days are read as 366 days.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = header_str(headers, "retry-after", "Retry-After")?.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(seconds) = parse_count(value) {
            return Some(Duration::from_secs(seconds).min(MAX_WAIT));
        }
    } else if let Ok(at) = httpdate::parse_http_date(value) {
        return Some(
            at.duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(MAX_WAIT),
        );
    }
    log::debug!("ignoring Retry-After: neither delay-seconds nor an HTTP-date");
    None
}

// ---------------------------------------------------------------------------------------
// The three families.

/// A quota policy from `RateLimit-Policy`.
#[derive(Debug)]
struct Policy<'a> {
    /// The policy's name, which `RateLimit` items refer to.
    name: Cow<'a, str>,
    /// `q`: quota units per window.
    quota: u64,
    /// `w`: the window in seconds, when stated (never zero).
    window: Option<u64>,
}

impl Policy<'_> {
    /// `q / w` in units per second, when the window is stated.
    fn rate(&self) -> Option<f64> {
        // Both are below 10^15 (Structured Fields integers), so this is finite.
        self.window.map(|w| self.quota as f64 / w as f64)
    }
}

/// A service limit from `RateLimit`.
#[derive(Debug)]
struct Limit<'a> {
    /// The policy this limit is under.
    name: Cow<'a, str>,
    /// `r`: units still available.
    remaining: u64,
    /// `t`: seconds within which no more than `remaining` may be used, when stated.
    reset: Option<u64>,
}

/// The draft-11 fields: `RateLimit-Policy` and `RateLimit` as Lists of named items.
fn ietf(headers: &HeaderMap) -> Option<ServerQuota> {
    let policies: Vec<Policy<'_>> =
        list_field(headers, "ratelimit-policy", "RateLimit-Policy", ["q", "w"])
            .into_iter()
            .filter_map(|member| {
                let policy = to_policy(member);
                if policy.is_none() {
                    log::debug!("ignoring a RateLimit-Policy item: not \"name\";q=N[;w=N]");
                }
                policy
            })
            .collect();
    // The older drafts' Dictionary form (`limit=10, ...`) is read by `legacy`.
    let limits: Vec<Limit<'_>> = if ratelimit_is_dictionary(headers) {
        Vec::new()
    } else {
        list_field(headers, "ratelimit", "RateLimit", ["r", "t"])
            .into_iter()
            .filter_map(|member| {
                let limit = to_limit(member);
                if limit.is_none() {
                    log::debug!("ignoring a RateLimit item: not \"name\";r=N[;t=N]");
                }
                limit
            })
            .collect()
    };

    let policy_named = |name: &str| policies.iter().find(|p| p.name == name);
    // A policy with no window states no rate: it ranks after every stated one.
    let rate_key =
        |policy: Option<&Policy<'_>>| policy.and_then(Policy::rate).unwrap_or(f64::INFINITY);

    // The most restrictive limit: the least left, then the slowest policy.
    let limit = limits.iter().min_by(|a, b| {
        a.remaining.cmp(&b.remaining).then_with(|| {
            rate_key(policy_named(&a.name)).total_cmp(&rate_key(policy_named(&b.name)))
        })
    });
    let policy = match limit {
        Some(limit) => policy_named(&limit.name),
        None => policies.iter().min_by(|a, b| {
            rate_key(Some(a))
                .total_cmp(&rate_key(Some(b)))
                .then(a.quota.cmp(&b.quota))
        }),
    };
    if limit.is_none() && policy.is_none() {
        return None;
    }
    Some(ServerQuota {
        family: HeaderFamily::Ietf,
        policy_rate: policy.and_then(Policy::rate),
        limit: policy.map(|p| p.quota),
        remaining: limit.map(|l| l.remaining),
        reset: limit.and_then(|l| l.reset).map(seconds_clamped),
    })
}

/// A `RateLimit-Policy` member as a policy: a String with a non-negative integer `q`,
/// and `w`, if present, a positive integer.
fn to_policy(member: Member<'_, 2>) -> Option<Policy<'_>> {
    let Member {
        item: Some(Bare::String(name)),
        params: [q, w],
    } = member
    else {
        return None;
    };
    let window = match w {
        None => None,
        Some(w) => Some(non_negative(w).filter(|&w| w > 0)?),
    };
    Some(Policy {
        name,
        quota: non_negative(q?)?,
        window,
    })
}

/// A `RateLimit` member as a limit: a String with a non-negative integer `r`, and `t`,
/// if present, a non-negative integer.
fn to_limit(member: Member<'_, 2>) -> Option<Limit<'_>> {
    let Member {
        item: Some(Bare::String(name)),
        params: [r, t],
    } = member
    else {
        return None;
    };
    let reset = match t {
        None => None,
        Some(t) => Some(non_negative(t)?),
    };
    Some(Limit {
        name,
        remaining: non_negative(r?)?,
        reset,
    })
}

/// Whether `RateLimit` is the older drafts' Dictionary (`limit=10, remaining=5, reset=3`)
/// rather than draft-11's List, whose items are quoted policy names.
fn ratelimit_is_dictionary(headers: &HeaderMap) -> bool {
    headers
        .get("ratelimit")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| !value.trim_start().starts_with('"'))
}

/// `RateLimit-*`: the older drafts' Dictionary `RateLimit`, else the three fields.
fn legacy(headers: &HeaderMap) -> Option<ServerQuota> {
    legacy_dictionary(headers).or_else(|| legacy_fields(headers))
}

/// The older drafts' `RateLimit: limit=10, remaining=5, reset=3`.
fn legacy_dictionary(headers: &HeaderMap) -> Option<ServerQuota> {
    if !ratelimit_is_dictionary(headers) {
        return None;
    }
    let mut found = [None, None, None];
    for line in headers.get_all("ratelimit") {
        let value = ascii(line.as_bytes(), "RateLimit")?;
        // Later lines continue the Dictionary, so their keys override earlier ones.
        if parse_dictionary(value, ["limit", "remaining", "reset"], &mut found).is_err() {
            log::debug!("ignoring RateLimit: not a Structured Fields Dictionary");
            return None;
        }
    }
    let [limit, remaining, reset] = found.map(|bare| {
        let number = non_negative(bare?);
        if number.is_none() {
            log::debug!("ignoring a RateLimit member: not a non-negative integer");
        }
        number
    });
    quota(
        HeaderFamily::RateLimitLegacy,
        limit,
        remaining,
        reset.map(seconds_clamped),
    )
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (delay in seconds).
fn legacy_fields(headers: &HeaderMap) -> Option<ServerQuota> {
    let limit = count_header(headers, "ratelimit-limit", "RateLimit-Limit");
    let remaining = count_header(headers, "ratelimit-remaining", "RateLimit-Remaining");
    let reset =
        seconds_header(headers, "ratelimit-reset", "RateLimit-Reset").map(|d| d.min(MAX_WAIT));
    quota(HeaderFamily::RateLimitLegacy, limit, remaining, reset)
}

/// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`, a Unix time
/// (GitHub) or a delay in seconds (most others), told apart by size.
fn x_ratelimit(headers: &HeaderMap, now: SystemTime) -> Option<ServerQuota> {
    let limit = count_header(headers, "x-ratelimit-limit", "X-RateLimit-Limit");
    let remaining = count_header(headers, "x-ratelimit-remaining", "X-RateLimit-Remaining");
    let reset = seconds_header(headers, "x-ratelimit-reset", "X-RateLimit-Reset").map(|value| {
        if value.as_secs() < EPOCH_THRESHOLD {
            return value.min(MAX_WAIT);
        }
        match UNIX_EPOCH.checked_add(value) {
            Some(at) => at
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(MAX_WAIT),
            // Past what the platform's clock can hold: as far off as we allow.
            None => MAX_WAIT,
        }
    });
    quota(HeaderFamily::XRateLimit, limit, remaining, reset)
}

/// A quota from what was read, or None when nothing was.
fn quota(
    family: HeaderFamily,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
) -> Option<ServerQuota> {
    (limit.is_some() || remaining.is_some() || reset.is_some()).then_some(ServerQuota {
        family,
        policy_rate: None,
        limit,
        remaining,
        reset,
    })
}

// ---------------------------------------------------------------------------------------
// Plain numeric headers.

/// The first value of header `name` (lowercase; `display` in logs) as text, or None
/// when absent or not visible ASCII.
fn header_str<'h>(headers: &'h HeaderMap, name: &'static str, display: &str) -> Option<&'h str> {
    ascii(headers.get(name)?.as_bytes(), display)
}

/// `bytes` as text when it is visible ASCII (and tabs), as HTTP field values should be.
fn ascii<'a>(bytes: &'a [u8], header: &str) -> Option<&'a str> {
    if bytes
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        // All ASCII, so valid UTF-8, and every index is a char boundary.
        std::str::from_utf8(bytes).ok()
    } else {
        log::debug!("ignoring {header}: not visible ASCII");
        None
    }
}

/// The first member of a plain numeric header: `100, 100;w=60` and a header repeated by
/// a proxy (`5000, 5000`) both say 100 or 5000.
fn first_member(value: &str) -> &str {
    value.split([',', ';']).next().unwrap_or_default().trim()
}

/// A header holding a count, such as `X-RateLimit-Remaining: 4999`.
fn count_header(headers: &HeaderMap, name: &'static str, display: &str) -> Option<u64> {
    let value = first_member(header_str(headers, name, display)?);
    let count = parse_count(value);
    if count.is_none() {
        log::debug!("ignoring {display}: not a non-negative integer");
    }
    count
}

/// A header holding seconds, such as `X-RateLimit-Reset: 1.5`; not clamped.
fn seconds_header(headers: &HeaderMap, name: &'static str, display: &str) -> Option<Duration> {
    let value = first_member(header_str(headers, name, display)?);
    let seconds = parse_seconds(value);
    if seconds.is_none() {
        log::debug!("ignoring {display}: not a non-negative number of seconds");
    }
    seconds
}

/// Digits only (no sign, no spaces), fitting u64.
fn parse_count(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `DIGITS` or `DIGITS.DIGITS`, exactly to the nanosecond, with no float in between;
/// the whole seconds must fit u64.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let secs = parse_count(whole)?;
    let mut nanos = 0u32;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Digits past the ninth are finer than a Duration holds.
        for position in 0..9 {
            let digit = fraction.as_bytes().get(position).map_or(0, |b| b - b'0');
            nanos = nanos * 10 + u32::from(digit);
        }
    }
    // nanos < 10^9, so this never carries into (and overflows) the seconds.
    Some(Duration::new(secs, nanos))
}

/// A whole number of seconds, at most `MAX_WAIT`.
fn seconds_clamped(seconds: u64) -> Duration {
    Duration::from_secs(seconds).min(MAX_WAIT)
}

/// A Structured Fields Integer that is not negative.
fn non_negative(bare: Bare<'_>) -> Option<u64> {
    match bare {
        Bare::Integer(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Structured Fields (RFC 9651), as much as these fields need: Lists and Dictionaries of
// Items and Inner Lists with Parameters, and every kind of bare item, so that a valid
// field is never rejected; only Integers and Strings keep their values.

/// A field that is not valid Structured Fields; RFC 9651 says to ignore it whole.
#[derive(Debug)]
struct Malformed;

/// A bare item, as far as these fields care.
#[derive(Debug)]
enum Bare<'a> {
    /// An Integer (at most 15 digits, so it fits i64).
    Integer(i64),
    /// A String, unescaped.
    String(Cow<'a, str>),
    /// A Decimal, Token, Byte Sequence, Boolean, Date or Display String.
    Other,
}

/// One member of a List: its bare item (None for an Inner List) and the values of the
/// parameters asked for, in the order asked.
#[derive(Debug)]
struct Member<'a, const N: usize> {
    /// The bare item; None for an Inner List.
    item: Option<Bare<'a>>,
    /// The parameters asked for, by position; None when absent.
    params: [Option<Bare<'a>>; N],
}

/// The members of List field `name` (lowercase; `display` in logs), every line of it,
/// keeping the first `MAX_MEMBERS` and only the parameters named in `keys`. Empty when
/// absent, not ASCII or malformed.
fn list_field<'h, const N: usize>(
    headers: &'h HeaderMap,
    name: &'static str,
    display: &str,
    keys: [&str; N],
) -> Vec<Member<'h, N>> {
    let mut members = Vec::new();
    let mut seen = 0;
    for line in headers.get_all(name) {
        let parsed = ascii(line.as_bytes(), display)
            .ok_or(Malformed)
            .and_then(|value| parse_list(value, keys, &mut members));
        match parsed {
            Ok(count) => seen += count,
            Err(Malformed) => {
                log::debug!("ignoring {display}: not a Structured Fields List");
                return Vec::new();
            }
        }
    }
    if seen > MAX_MEMBERS {
        log::debug!("{display}: looking at its first {MAX_MEMBERS} of {seen} members only");
    }
    members
}

/// Parses one line of a List into `out`, which is filled up to `MAX_MEMBERS`; the rest
/// is checked but not kept. Returns how many members the line has.
fn parse_list<'a, const N: usize>(
    input: &'a str,
    keys: [&str; N],
    out: &mut Vec<Member<'a, N>>,
) -> Result<usize, Malformed> {
    let mut parser = Parser::new(input)?;
    let mut count = 0;
    while !parser.at_end() {
        let member = parser.item_or_inner_list(keys)?;
        count += 1;
        if out.len() < MAX_MEMBERS {
            out.push(member);
        }
        if !parser.end_of_member()? {
            break;
        }
    }
    Ok(count)
}

/// Parses one line of a Dictionary, setting `found[i]` to the value of the member named
/// `keys[i]` (an Inner List's value is `Bare::Other`; a later member replaces an earlier).
fn parse_dictionary<'a, const N: usize>(
    input: &'a str,
    keys: [&str; N],
    found: &mut [Option<Bare<'a>>; N],
) -> Result<(), Malformed> {
    let mut parser = Parser::new(input)?;
    while !parser.at_end() {
        let key = parser.key()?;
        let value = if parser.eat(b'=') {
            parser.item_or_inner_list([])?.item.unwrap_or(Bare::Other)
        } else {
            // A bare key is Boolean true, with parameters.
            parser.parameters([])?;
            Bare::Other
        };
        if let Some(slot) = keys.iter().position(|&k| k == key) {
            found[slot] = Some(value);
        }
        if !parser.end_of_member()? {
            break;
        }
    }
    Ok(())
}

/// A cursor over an ASCII field value.
struct Parser<'a> {
    /// The field value, all ASCII, so every byte index is a char boundary.
    input: &'a str,
    /// The next byte to read.
    pos: usize,
}

impl<'a> Parser<'a> {
    /// A parser over `input` without its surrounding spaces (RFC 9651 §4.2).
    fn new(input: &'a str) -> Result<Self, Malformed> {
        if !input.is_ascii() {
            return Err(Malformed);
        }
        Ok(Parser {
            input: input.trim_matches(' '),
            pos: 0,
        })
    }

    /// Whether everything has been read.
    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// The next byte, not consumed.
    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    /// Consumes the next byte if it is `byte`.
    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.peek() == Some(byte);
        if matched {
            self.pos += 1;
        }
        matched
    }

    /// Consumes the next byte, whatever it is.
    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    /// Skips spaces and, where `tabs`, tabs too.
    fn skip_whitespace(&mut self, tabs: bool) {
        while matches!(self.peek(), Some(b' ')) || (tabs && self.peek() == Some(b'\t')) {
            self.pos += 1;
        }
    }

    /// After a List or Dictionary member: the end (false), or a comma and another
    /// member to come (true). A trailing comma is malformed.
    fn end_of_member(&mut self) -> Result<bool, Malformed> {
        self.skip_whitespace(true);
        if self.at_end() {
            return Ok(false);
        }
        if !self.eat(b',') {
            return Err(Malformed);
        }
        self.skip_whitespace(true);
        if self.at_end() {
            return Err(Malformed);
        }
        Ok(true)
    }

    /// An Item or an Inner List, with its parameters.
    fn item_or_inner_list<const N: usize>(
        &mut self,
        keys: [&str; N],
    ) -> Result<Member<'a, N>, Malformed> {
        let item = if self.peek() == Some(b'(') {
            self.inner_list()?;
            None
        } else {
            Some(self.bare_item()?)
        };
        let params = self.parameters(keys)?;
        Ok(Member { item, params })
    }

    /// An Inner List, `(a b;p=1)`, checked and dropped; its own parameters are left for
    /// the caller.
    fn inner_list(&mut self) -> Result<(), Malformed> {
        self.pos += 1; // '('
        loop {
            self.skip_whitespace(false);
            if self.eat(b')') {
                return Ok(());
            }
            self.bare_item()?;
            self.parameters([])?;
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return Err(Malformed);
            }
        }
    }

    /// Parameters, `;key=value;key`, keeping the values of those named in `keys` (the
    /// last one wins, as in a map).
    fn parameters<const N: usize>(
        &mut self,
        keys: [&str; N],
    ) -> Result<[Option<Bare<'a>>; N], Malformed> {
        let mut found = std::array::from_fn(|_| None);
        while self.eat(b';') {
            self.skip_whitespace(false);
            let key = self.key()?;
            let value = if self.eat(b'=') {
                self.bare_item()?
            } else {
                Bare::Other // Boolean true
            };
            if let Some(slot) = keys.iter().position(|&k| k == key) {
                found[slot] = Some(value);
            }
        }
        Ok(found)
    }

    /// A key: `(lcalpha / "*") *(lcalpha / DIGIT / "_" / "-" / "." / "*")`.
    fn key(&mut self) -> Result<&'a str, Malformed> {
        let start = self.pos;
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.pos += 1,
            _ => return Err(Malformed),
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.pos += 1;
        }
        Ok(&self.input[start..self.pos])
    }

    /// A bare item of any kind.
    fn bare_item(&mut self) -> Result<Bare<'a>, Malformed> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string().map(Bare::String),
            Some(b'*' | b'A'..=b'Z' | b'a'..=b'z') => {
                self.token();
                Ok(Bare::Other)
            }
            Some(b':') => self.byte_sequence(),
            Some(b'?') => {
                self.pos += 1;
                match self.bump() {
                    Some(b'0' | b'1') => Ok(Bare::Other),
                    _ => Err(Malformed),
                }
            }
            Some(b'@') => {
                self.pos += 1;
                match self.number()? {
                    Bare::Integer(_) => Ok(Bare::Other),
                    _ => Err(Malformed),
                }
            }
            Some(b'%') => self.display_string(),
            _ => Err(Malformed),
        }
    }

    /// An Integer (at most 15 digits) or a Decimal (at most 12 digits, a dot, 1 to 3
    /// digits).
    fn number(&mut self) -> Result<Bare<'a>, Malformed> {
        let negative = self.eat(b'-');
        let start = self.pos;
        let mut dot = None;
        while let Some(byte) = self.peek() {
            match byte {
                b'0'..=b'9' => {}
                b'.' if dot.is_none() => {
                    if self.pos - start > 12 {
                        return Err(Malformed);
                    }
                    dot = Some(self.pos);
                }
                _ => break,
            }
            self.pos += 1;
            let limit = if dot.is_some() { 16 } else { 15 };
            if self.pos - start > limit {
                return Err(Malformed);
            }
        }
        let digits = &self.input[start..self.pos];
        match dot {
            None => {
                // 1 to 15 digits always fit i64; empty is malformed.
                let magnitude: i64 = digits.parse().map_err(|_| Malformed)?;
                Ok(Bare::Integer(if negative { -magnitude } else { magnitude }))
            }
            Some(dot) => {
                let fraction = self.pos - dot - 1;
                if dot == start || !(1..=3).contains(&fraction) {
                    return Err(Malformed);
                }
                Ok(Bare::Other)
            }
        }
    }

    /// A String: printable ASCII between quotes, with `\"` and `\\` as the only escapes.
    /// Borrowed unless it has escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, Malformed> {
        self.pos += 1; // '"'
        let start = self.pos;
        let mut unescaped: Option<String> = None;
        loop {
            let at = self.pos;
            match self.bump().ok_or(Malformed)? {
                b'"' => {
                    return Ok(match unescaped {
                        Some(owned) => Cow::Owned(owned),
                        None => Cow::Borrowed(&self.input[start..at]),
                    });
                }
                b'\\' => {
                    let escaped = self.bump().ok_or(Malformed)?;
                    if escaped != b'"' && escaped != b'\\' {
                        return Err(Malformed);
                    }
                    unescaped
                        .get_or_insert_with(|| self.input[start..at].to_owned())
                        .push(char::from(escaped));
                }
                byte @ b' '..=b'~' => {
                    if let Some(owned) = &mut unescaped {
                        owned.push(char::from(byte));
                    }
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// A Token: `(ALPHA / "*") *(tchar / ":" / "/")`; the caller saw the first byte.
    fn token(&mut self) {
        self.pos += 1;
        while let Some(byte) = self.peek() {
            let tchar = byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&byte);
            if !tchar {
                break;
            }
            self.pos += 1;
        }
    }

    /// A Byte Sequence, `:base64:`, checked and dropped.
    fn byte_sequence(&mut self) -> Result<Bare<'a>, Malformed> {
        self.pos += 1; // ':'
        loop {
            match self.bump().ok_or(Malformed)? {
                b':' => return Ok(Bare::Other),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {}
                _ => return Err(Malformed),
            }
        }
    }

    /// A Display String, `%"caf%c3%a9"`: printable ASCII with lowercase `%xx` escapes
    /// that together must be UTF-8. Checked and dropped.
    fn display_string(&mut self) -> Result<Bare<'a>, Malformed> {
        self.pos += 1; // '%'
        if !self.eat(b'"') {
            return Err(Malformed);
        }
        // Bounded by the field's own length.
        let mut bytes = Vec::new();
        loop {
            match self.bump().ok_or(Malformed)? {
                b'"' => {
                    return match std::str::from_utf8(&bytes) {
                        Ok(_) => Ok(Bare::Other),
                        Err(_) => Err(Malformed),
                    };
                }
                b'%' => {
                    let high = lower_hex(self.bump())?;
                    let low = lower_hex(self.bump())?;
                    bytes.push((high << 4) | low);
                }
                byte @ b' '..=b'~' => bytes.push(byte),
                _ => return Err(Malformed),
            }
        }
    }
}

/// The value of a lowercase hex digit.
fn lower_hex(byte: Option<u8>) -> Result<u8, Malformed> {
    match byte {
        Some(digit @ b'0'..=b'9') => Ok(digit - b'0'),
        Some(digit @ b'a'..=b'f') => Ok(digit - b'a' + 10),
        _ => Err(Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ureq::http::HeaderValue;

    /// 2023-11-14 22:13:20 UTC, a Tuesday.
    const NOW_SECS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn read_now(pairs: &[(&'static str, &str)]) -> Option<ServerQuota> {
        read(&headers(pairs), now)
    }

    fn retry_after_now(value: &str) -> Option<Duration> {
        retry_after(&headers(&[("retry-after", value)]), now())
    }

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_named_policy_is_the_one_the_ratelimit_item_names() {
        let quota = read_now(&[
            (
                "ratelimit-policy",
                r#""burst";q=100;w=60, "daily";q=1000;w=86400"#,
            ),
            ("ratelimit", r#""daily";r=10;t=3600"#),
        ])
        .unwrap();
        assert_eq!(
            quota,
            ServerQuota {
                family: HeaderFamily::Ietf,
                policy_rate: Some(1000.0 / 86400.0),
                limit: Some(1000),
                remaining: Some(10),
                reset: Some(secs(3600)),
            }
        );
    }

    #[test]
    fn the_item_with_the_least_left_is_the_one_that_applies() {
        let quota = read_now(&[
            (
                "ratelimit-policy",
                r#""burst";q=100;w=60, "daily";q=1000;w=86400"#,
            ),
            ("ratelimit", r#""burst";r=50;t=30, "daily";r=10;t=3600"#),
        ])
        .unwrap();
        assert_eq!(quota.limit, Some(1000));
        assert_eq!(quota.remaining, Some(10));
        assert_eq!(quota.reset, Some(secs(3600)));
    }

    #[test]
    fn among_items_with_as_much_left_the_slowest_policy_applies() {
        let quota = read_now(&[
            (
                "ratelimit-policy",
                r#""burst";q=100;w=60,"daily";q=1000;w=86400"#,
            ),
            ("ratelimit", r#""burst";r=5;t=30,"daily";r=5;t=3600"#),
        ])
        .unwrap();
        assert_eq!(quota.limit, Some(1000));
        assert_eq!(quota.reset, Some(secs(3600)));
    }

    #[test]
    fn with_policies_alone_the_slowest_one_applies() {
        let quota = read_now(&[(
            "ratelimit-policy",
            r#""permin";q=50;w=60,"perhr";q=1000;w=3600"#,
        )])
        .unwrap();
        assert_eq!(quota.family, HeaderFamily::Ietf);
        assert_eq!(quota.limit, Some(1000));
        assert_eq!(quota.policy_rate, Some(1000.0 / 3600.0));
        assert_eq!(quota.remaining, None);
        assert_eq!(quota.reset, None);
    }

    #[test]
    fn a_ratelimit_item_alone_gives_what_is_left_and_when() {
        let quota = read_now(&[("ratelimit", r#""default";r=50;t=30"#)]).unwrap();
        assert_eq!(
            quota,
            ServerQuota {
                family: HeaderFamily::Ietf,
                policy_rate: None,
                limit: None,
                remaining: Some(50),
                reset: Some(secs(30)),
            }
        );
    }

    #[test]
    fn an_item_naming_an_unknown_policy_gives_no_limit() {
        let quota = read_now(&[
            ("ratelimit-policy", r#""burst";q=100;w=60"#),
            ("ratelimit", r#""other";r=3"#),
        ])
        .unwrap();
        assert_eq!((quota.limit, quota.policy_rate), (None, None));
        assert_eq!((quota.remaining, quota.reset), (Some(3), None));
    }

    #[test]
    fn a_policy_without_a_window_states_a_limit_but_no_rate() {
        let quota = read_now(&[("ratelimit-policy", r#""trial";q=500"#)]).unwrap();
        assert_eq!(quota.limit, Some(500));
        assert_eq!(quota.policy_rate, None);
    }

    #[test]
    fn other_parameters_of_every_kind_are_passed_over() {
        let quota = read_now(&[
            (
                "ratelimit-policy",
                r#""peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:;acme-x=?1;d=@1;s=%"caf%c3%a9";f=1.5;tok=a/b"#,
            ),
            ("ratelimit", r#""peruser";r=300;t=6;pk=:QXBwLTk5OQ==:"#),
        ])
        .unwrap();
        assert_eq!(quota.limit, Some(65535));
        assert_eq!(quota.policy_rate, Some(6553.5));
        assert_eq!(quota.remaining, Some(300));
        assert_eq!(quota.reset, Some(secs(6)));
    }

    #[test]
    fn a_list_split_over_several_lines_is_read_whole() {
        let quota = read_now(&[
            ("ratelimit-policy", r#""burst";q=100;w=60"#),
            ("ratelimit-policy", r#""daily";q=1000;w=86400"#),
            ("ratelimit", r#""daily";r=7"#),
        ])
        .unwrap();
        assert_eq!(quota.limit, Some(1000));
    }

    #[test]
    fn policy_names_may_hold_escaped_quotes() {
        let quota = read_now(&[
            ("ratelimit-policy", r#""a\"b";q=1;w=1, "a";q=2;w=1"#),
            ("ratelimit", r#""a\"b";r=0"#),
        ])
        .unwrap();
        assert_eq!(quota.limit, Some(1));
    }

    #[test]
    fn only_the_first_sixteen_members_are_looked_at() {
        let mut policy: Vec<String> = (0..16).map(|i| format!("\"p{i}\";q=100;w=1")).collect();
        policy.push(r#""slow";q=1;w=1000"#.to_owned());
        let quota = read_now(&[("ratelimit-policy", &policy.join(", "))]).unwrap();
        assert_eq!(quota.limit, Some(100));
    }

    #[test]
    fn malformed_ietf_items_are_skipped_and_malformed_fields_ignored() {
        // Items with a bad q or w are skipped; the rest of the field is used.
        for policy in [
            r#""bad";q=-1;w=1, "good";q=5;w=5"#,
            r#""bad";q=1;w=0, "good";q=5;w=5"#,
            r#""bad";q=1.5;w=1, "good";q=5;w=5"#,
            r#""bad";w=1, "good";q=5;w=5"#,
            r#"bad;q=1;w=1, "good";q=5;w=5"#,
            r#"("bad");q=1;w=1, "good";q=5;w=5"#,
        ] {
            let quota = read_now(&[("ratelimit-policy", policy)]).unwrap();
            assert_eq!(quota.limit, Some(5), "{policy}");
        }
        // A field that is not a List is ignored whole.
        for policy in [
            r#""burst";q=100;w=60,"#,
            r#""burst;q=100"#,
            r#""burst";q=1234567890123456"#,
            r#""burst";q=100 w=60"#,
            r#""bu\rst";q=100"#,
            r#""burst";Q=100"#,
            r#""burst";q=:abc"#,
            r#""burst";q=1.2345"#,
            r#""burst";q=%"%ff""#,
            "",
        ] {
            assert_eq!(read_now(&[("ratelimit-policy", policy)]), None, "{policy}");
        }
        for limit in [
            r#""default";r=-1"#,
            r#""default";t=5"#,
            r#""default";r=1;t=-5"#,
            r#""default";r=1,,"#,
        ] {
            assert_eq!(read_now(&[("ratelimit", limit)]), None, "{limit}");
        }
    }

    #[test]
    fn a_non_ascii_value_is_ignored() {
        for name in [
            "ratelimit-policy",
            "ratelimit",
            "x-ratelimit-remaining",
            "retry-after",
        ] {
            let mut map = HeaderMap::new();
            map.insert(
                name,
                HeaderValue::from_bytes(b"\"caf\xc3\xa9\";q=1").unwrap(),
            );
            assert_eq!(read(&map, now), None, "{name}");
            assert_eq!(retry_after(&map, now()), None, "{name}");
        }
    }

    #[test]
    fn the_older_dictionary_ratelimit_is_the_legacy_family() {
        let quota = read_now(&[("ratelimit", "limit=10, remaining=5, reset=3")]).unwrap();
        assert_eq!(
            quota,
            ServerQuota {
                family: HeaderFamily::RateLimitLegacy,
                policy_rate: None,
                limit: Some(10),
                remaining: Some(5),
                reset: Some(secs(3)),
            }
        );
        assert_eq!(read_now(&[("ratelimit", "limit=10, remaining=")]), None);
    }

    #[test]
    fn the_three_ratelimit_fields_give_a_delta_reset() {
        let quota = read_now(&[
            ("ratelimit-limit", "100, 100;w=60"),
            ("ratelimit-remaining", "42"),
            ("ratelimit-reset", "17"),
        ])
        .unwrap();
        assert_eq!(
            quota,
            ServerQuota {
                family: HeaderFamily::RateLimitLegacy,
                policy_rate: None,
                limit: Some(100),
                remaining: Some(42),
                reset: Some(secs(17)),
            }
        );
    }

    #[test]
    fn an_epoch_reset_becomes_the_time_left() {
        // GitHub's REST API.
        let quota = read_now(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-reset", "1700000600"),
            ("x-ratelimit-used", "1"),
        ])
        .unwrap();
        assert_eq!(
            quota,
            ServerQuota {
                family: HeaderFamily::XRateLimit,
                policy_rate: None,
                limit: Some(5000),
                remaining: Some(4999),
                reset: Some(secs(600)),
            }
        );
    }

    #[test]
    fn an_epoch_reset_in_the_past_is_zero() {
        let quota = read_now(&[("x-ratelimit-reset", "1699999000")]).unwrap();
        assert_eq!(quota.reset, Some(Duration::ZERO));
    }

    #[test]
    fn a_small_reset_is_a_delay_in_seconds_and_may_be_fractional() {
        let quota = read_now(&[("x-ratelimit-reset", "30")]).unwrap();
        assert_eq!(quota.reset, Some(secs(30)));
        let quota = read_now(&[("x-ratelimit-reset", "1.5")]).unwrap();
        assert_eq!(quota.reset, Some(Duration::from_millis(1500)));
        let quota = read_now(&[("x-ratelimit-reset", "1700000000.25")]).unwrap();
        assert_eq!(quota.reset, Some(Duration::from_millis(250)));
    }

    #[test]
    fn resets_are_clamped_to_366_days() {
        for value in ["99999999999", "999999999", "18446744073709551615"] {
            let quota = read_now(&[("x-ratelimit-reset", value)]).unwrap();
            assert_eq!(quota.reset, Some(MAX_WAIT), "{value}");
        }
        let quota = read_now(&[("ratelimit", r#""d";r=0;t=999999999999999"#)]).unwrap();
        assert_eq!(quota.reset, Some(MAX_WAIT));
    }

    #[test]
    fn malformed_plain_headers_are_ignored_one_by_one() {
        for bad in [
            "abc",
            "-5",
            "+5",
            "1e3",
            "",
            " ",
            "1.",
            ".5",
            "18446744073709551616",
        ] {
            let quota = read_now(&[
                ("x-ratelimit-limit", bad),
                ("x-ratelimit-remaining", "7"),
                ("x-ratelimit-reset", bad),
            ])
            .unwrap();
            assert_eq!(quota.limit, None, "{bad:?}");
            assert_eq!(quota.remaining, Some(7), "{bad:?}");
            assert_eq!(quota.reset, None, "{bad:?}");
            let all_bad = [
                ("ratelimit-limit", bad),
                ("ratelimit-remaining", bad),
                ("ratelimit-reset", bad),
            ];
            assert_eq!(read_now(&all_bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ietf_fields_win_then_ratelimit_then_x_ratelimit() {
        let ietf = ("ratelimit", r#""default";r=1"#);
        let legacy = ("ratelimit-remaining", "2");
        let x = ("x-ratelimit-remaining", "3");
        let family = |pairs: &[(&'static str, &str)]| read_now(pairs).map(|q| q.family);
        assert_eq!(family(&[x, legacy, ietf]), Some(HeaderFamily::Ietf));
        assert_eq!(family(&[x, legacy]), Some(HeaderFamily::RateLimitLegacy));
        assert_eq!(family(&[x]), Some(HeaderFamily::XRateLimit));
        // A malformed family counts as absent.
        let broken = ("ratelimit", r#""default";r=oops"#);
        assert_eq!(family(&[x, broken]), Some(HeaderFamily::XRateLimit));
        assert_eq!(family(&[]), None);
    }

    #[test]
    fn retry_after_in_seconds_is_a_delay() {
        assert_eq!(retry_after_now("120"), Some(secs(120)));
        assert_eq!(retry_after_now("0"), Some(Duration::ZERO));
        assert_eq!(retry_after_now("99999999999"), Some(MAX_WAIT));
    }

    #[test]
    fn retry_after_as_a_date_is_the_time_until_it() {
        for date in [
            "Tue, 14 Nov 2023 22:15:20 GMT",
            "Tuesday, 14-Nov-23 22:15:20 GMT",
            "Tue Nov 14 22:15:20 2023",
        ] {
            assert_eq!(retry_after_now(date), Some(secs(120)), "{date}");
        }
    }

    #[test]
    fn retry_after_a_date_in_the_past_is_zero() {
        assert_eq!(
            retry_after_now("Tue, 14 Nov 2023 22:00:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn malformed_retry_after_is_ignored() {
        for bad in [
            "",
            "soon",
            "-1",
            "1.5",
            "+5",
            "18446744073709551616",
            "Tue, 14 Nov 2023 25:15:20 GMT",
            "2023-11-14T22:15:20Z",
        ] {
            assert_eq!(retry_after_now(bad), None, "{bad:?}");
        }
        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
    }

    /// Header values likely to reach deep into the parsers, and arbitrary bytes.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        let fragment = prop::sample::select(vec![
            "\"",
            "\\",
            ";",
            ",",
            " ",
            "=",
            "q",
            "w",
            "r",
            "t",
            "limit",
            "remaining",
            "reset",
            "\"daily\"",
            "0",
            "1",
            "60",
            "-",
            ".",
            "999999999999999",
            "1700000600",
            ":",
            "(",
            ")",
            "?1",
            "@",
            "%\"",
            "%c3",
            "*",
            "Tue, 14 Nov 2023 22:15:20 GMT",
        ]);
        prop_oneof![
            prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat().into_bytes()),
            "[ -~]{0,40}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
        ]
    }

    const NAMES: [&str; 9] = [
        "retry-after",
        "ratelimit-policy",
        "ratelimit",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ];

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic_nor_ask_for_more_than_366_days(
            values in prop::collection::vec(prop::collection::vec(value(), 0..3), NAMES.len()),
            now_secs in 0u64..4_000_000_000,
        ) {
            let mut map = HeaderMap::new();
            for (name, lines) in NAMES.iter().zip(&values) {
                for line in lines {
                    if let Ok(value) = HeaderValue::from_bytes(line) {
                        map.append(*name, value);
                    }
                }
            }
            let now = UNIX_EPOCH + Duration::from_secs(now_secs);
            if let Some(quota) = read(&map, || now) {
                prop_assert!(quota.reset.is_none_or(|reset| reset <= MAX_WAIT));
                prop_assert!(quota.policy_rate.is_none_or(|rate| rate.is_finite() && rate >= 0.0));
            }
            prop_assert!(retry_after(&map, now).is_none_or(|wait| wait <= MAX_WAIT));
        }
    }
}
