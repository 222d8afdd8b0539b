//! The query language of `arbor search`, parsed into [`Term`]s that are all required (AND).
//!
//! | term | matches |
//! |---|---|
//! | `name:GLOB`, `name=GLOB`, or a bare word holding `*`, `?` or `[` | the entry's name, whole, case-sensitive (`*`, `?`, `[abc]`) |
//! | `type:f`, `type:d`, `type:l` | files, directories, symlinks |
//! | `size>1G`, `size<10K`, `size>=N`, `size<=N`, `size=N` | size in bytes; K, M, G, T, P are powers of 1024 |
//! | `mtime>2026-01-01`, `mtime<2026-01-01T12:00:00` | modification time against an instant (UTC) |
//! | `mtime>7d`, `mtime<7d` (`-7d` is the same) | against the instant 7 days ago: `>` = newer (modified within the last 7 days), `<` = older; units s, m, h, d, w |
//! | `atime`, `ctime`, `btime` (creation) | as `mtime` |
//! | `uid=N`, `gid=N`, `owner=N`, `group=N` | numeric owner / group (the client turns names into numbers) |
//! | `xattr.KEY=VALUE` | an extended attribute with this value (`KEY` with or without its `user.` prefix) |
//! | `xattr.KEY` | the extended attribute exists |
//! | any other word | free text: a word of the name or of an xattr value (case-insensitive) |

use arbor_proto::records::InodeKind;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeField {
    Mtime,
    Atime,
    Ctime,
    Btime,
}

impl TimeField {
    pub fn field_name(self) -> &'static str {
        match self {
            TimeField::Mtime => "mtime",
            TimeField::Atime => "atime",
            TimeField::Ctime => "ctime",
            TimeField::Btime => "btime",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    Name(String),
    Kind(InodeKind),
    Size(Cmp, u64),
    Time(TimeField, Cmp, i64),
    Uid(u32),
    Gid(u32),
    XattrKey(String),
    XattrValue(String, String),
    Word(String),
}

/// A parsed query: every term must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub terms: Vec<Term>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadQuery(msg.into())
}

/// Splits `field OP value`, OP being the first of `:`, `=`, `<`, `<=`, `>`, `>=`.
fn split_op(token: &str) -> Option<(&str, Cmp, &str)> {
    let i = token.find([':', '=', '<', '>'])?;
    let field = &token[..i];
    let rest = &token[i..];
    let (cmp, len) = if rest.starts_with("<=") {
        (Cmp::Le, 2)
    } else if rest.starts_with(">=") {
        (Cmp::Ge, 2)
    } else if rest.starts_with('<') {
        (Cmp::Lt, 1)
    } else if rest.starts_with('>') {
        (Cmp::Gt, 1)
    } else {
        (Cmp::Eq, 1)
    };
    Some((field, cmp, &rest[len..]))
}

/// `10`, `10K`, `1.5G` (powers of 1024; a trailing `B` or `iB` is allowed).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'P' => 1 << 50,
                _ => return Err(bad(format!("unknown size unit in {s:?}"))),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| bad(format!("size {s:?} too large")));
    }
    let f: f64 = num.parse().map_err(|_| bad(format!("not a size: {s:?}")))?;
    if f.is_nan() || f < 0.0 {
        return Err(bad(format!("not a size: {s:?}")));
    }
    Ok((f * mult as f64) as u64)
}

/// An instant in ns since the epoch: `now`, `7d`/`-7d` (that long before `now_ns`; units s,
/// m, h, d, w), `2026-01-01`, `2026-01-01T12:00[:00][Z]`, all UTC.
pub fn parse_time(s: &str, now_ns: i64) -> Result<i64> {
    if s == "now" {
        return Ok(now_ns);
    }
    let rel = s.strip_prefix('-').unwrap_or(s);
    if let Some(unit) = rel.chars().last()
        && rel.len() > 1
        && rel[..rel.len() - 1].chars().all(|c| c.is_ascii_digit())
    {
        let secs: i64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => 0,
        };
        if secs > 0 {
            let n: i64 = rel[..rel.len() - 1]
                .parse()
                .map_err(|_| bad(format!("not a time: {s:?}")))?;
            return Ok(now_ns.saturating_sub(n.saturating_mul(secs).saturating_mul(1_000_000_000)));
        }
    }
    let t = s.trim_end_matches('Z');
    let parsed = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| {
            bad(format!(
                "not a time: {s:?} (use 2026-01-01, 2026-01-01T12:00:00, now, or 7d for 7 days ago)"
            ))
        })?;
    parsed
        .and_utc()
        .timestamp_nanos_opt()
        .ok_or_else(|| bad(format!("time out of range: {s:?}")))
}

fn number(field: &str, s: &str) -> Result<u32> {
    s.parse()
        .map_err(|_| bad(format!("{field} wants a number, got {s:?}")))
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Parses a query at instant `now_ns` (relative times count back from it).
pub fn parse(text: &str, now_ns: i64) -> Result<Query> {
    let mut terms = Vec::new();
    for token in text.split_whitespace() {
        terms.push(parse_token(token, now_ns)?);
    }
    Ok(Query { terms })
}

fn parse_token(token: &str, now_ns: i64) -> Result<Term> {
    if let Some(key) = token.strip_prefix("xattr.") {
        return Ok(match key.split_once('=') {
            Some((k, v)) if !k.is_empty() => Term::XattrValue(k.to_string(), v.to_string()),
            None if !key.is_empty() => Term::XattrKey(key.to_string()),
            _ => return Err(bad(format!("empty xattr name in {token:?}"))),
        });
    }
    let Some((field, cmp, value)) = split_op(token) else {
        return Ok(if is_glob(token) {
            Term::Name(token.to_string())
        } else {
            Term::Word(token.to_lowercase())
        });
    };
    let eq_only = |what: &str| -> Result<()> {
        if cmp == Cmp::Eq {
            Ok(())
        } else {
            Err(bad(format!("{what} takes = or :, in {token:?}")))
        }
    };
    match field {
        "name" => {
            eq_only("name")?;
            if value.is_empty() {
                return Err(bad("empty name"));
            }
            Ok(Term::Name(value.to_string()))
        }
        "type" | "kind" => {
            eq_only("type")?;
            let kind = match value {
                "f" | "file" => InodeKind::File,
                "d" | "dir" | "directory" => InodeKind::Directory,
                "l" | "symlink" | "link" => InodeKind::Symlink,
                _ => return Err(bad(format!("type is f, d or l, not {value:?}"))),
            };
            Ok(Term::Kind(kind))
        }
        "size" => Ok(Term::Size(cmp, parse_size(value)?)),
        "mtime" | "atime" | "ctime" | "btime" => {
            let f = match field {
                "mtime" => TimeField::Mtime,
                "atime" => TimeField::Atime,
                "ctime" => TimeField::Ctime,
                _ => TimeField::Btime,
            };
            Ok(Term::Time(f, cmp, parse_time(value, now_ns)?))
        }
        "uid" | "owner" | "user" => {
            eq_only(field)?;
            Ok(Term::Uid(number(field, value)?))
        }
        "gid" | "group" => {
            eq_only(field)?;
            Ok(Term::Gid(number(field, value)?))
        }
        _ if is_glob(token) => Ok(Term::Name(token.to_string())),
        _ => Err(bad(format!(
            "unknown field {field:?} in {token:?} (name, type, size, mtime, atime, ctime, \
             btime, uid, gid, owner, group, xattr.KEY)"
        ))),
    }
}

/// A name glob as a regular expression over the whole name (`*`, `?`, `[...]`, `[!...]`).
pub fn glob_to_regex(glob: &str) -> Result<String> {
    let mut out = String::new();
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut class = String::from("[");
                if matches!(chars.peek(), Some('!') | Some('^')) {
                    chars.next();
                    class.push('^');
                }
                let mut closed = false;
                for d in chars.by_ref() {
                    if d == ']' {
                        closed = true;
                        break;
                    }
                    if d == '\\' || d == '[' {
                        class.push('\\');
                    }
                    class.push(d);
                }
                if !closed {
                    return Err(bad(format!("unclosed [ in glob {glob:?}")));
                }
                class.push(']');
                out.push_str(&class);
            }
            c if c.is_alphanumeric() || c == ' ' || c == '_' => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_600_000_000_000_000;
    const DAY: i64 = 86_400_000_000_000;

    #[test]
    fn parses_every_kind_of_term() {
        let q = parse(
            "name:*.csv type:f size>1G size<=10K mtime>2026-01-01 mtime<7d atime>-2h \
             uid=1000 group=50 xattr.project=fraud xattr.owner report [ab]*.txt",
            NOW,
        )
        .unwrap();
        assert_eq!(
            q.terms,
            vec![
                Term::Name("*.csv".into()),
                Term::Kind(InodeKind::File),
                Term::Size(Cmp::Gt, 1 << 30),
                Term::Size(Cmp::Le, 10 << 10),
                Term::Time(TimeField::Mtime, Cmp::Gt, 1_767_225_600_000_000_000),
                Term::Time(TimeField::Mtime, Cmp::Lt, NOW - 7 * DAY),
                Term::Time(TimeField::Atime, Cmp::Gt, NOW - 2 * 3_600_000_000_000),
                Term::Uid(1000),
                Term::Gid(50),
                Term::XattrValue("project".into(), "fraud".into()),
                Term::XattrKey("owner".into()),
                Term::Word("report".into()),
                Term::Name("[ab]*.txt".into()),
            ]
        );
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for q in [
            "size>lots",
            "mtime>yesterdayish",
            "type:x",
            "colour=red",
            "uid=bob",
            "name<a",
            "xattr.",
        ] {
            assert!(parse(q, NOW).is_err(), "{q} should not parse");
        }
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(parse_size("10").unwrap(), 10);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_time("now", NOW).unwrap(), NOW);
        assert_eq!(parse_time("1w", NOW).unwrap(), NOW - 7 * DAY);
        assert_eq!(
            parse_time("1970-01-02T00:00:01Z", NOW).unwrap(),
            86_401_000_000_000
        );
    }

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_to_regex("*.csv").unwrap(), ".*\\.csv");
        assert_eq!(glob_to_regex("a?[!x]").unwrap(), "a.[^x]");
        assert!(glob_to_regex("[ab").is_err());
    }
}
