//! Mode arguments of `-chmod`: octal (`755`, `1777`) or symbolic clauses as in POSIX chmod
//! (`u+x`, `go-w`, `a=r`, `u=rwx,g=rx,o=`, `+X`, `o+t`, `g=u`). A parsed [`ModeChange`] is
//! applied to each file's current mode; a clause without a "who" means `a` (no umask, as HDFS).

const WHO_U: u32 = 0o4700;
const WHO_G: u32 = 0o2070;
const WHO_O: u32 = 0o1007;
const WHO_A: u32 = 0o7777;

/// A parsed mode argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeChange {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

/// `who op perms [op perms…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    who: u32,
    actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Action {
    op: char,
    perms: Perms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perms {
    /// Bits among r/w/x/s/t, with whether `X` was given.
    Bits { bits: u32, cond_x: bool },
    /// Copy the u, g or o triple of the current mode.
    Copy(char),
}

impl ModeChange {
    /// Parses an octal or symbolic mode; the error is the message `-chmod` prints.
    pub fn parse(s: &str) -> Result<ModeChange, String> {
        let bad = || format!("chmod : mode '{s}' does not match the expected pattern.");
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            if s.len() > 4 || s.bytes().any(|b| b > b'7') {
                return Err(bad());
            }
            return u32::from_str_radix(s, 8)
                .map(ModeChange::Octal)
                .map_err(|_| bad());
        }
        let clauses = s
            .split(',')
            .map(parse_clause)
            .collect::<Option<Vec<Clause>>>()
            .ok_or_else(bad)?;
        Ok(ModeChange::Symbolic(clauses))
    }

    /// The new permission bits for a file whose bits are now `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut mode = mode & 0o7777;
        let clauses = match self {
            ModeChange::Octal(m) => return *m,
            ModeChange::Symbolic(c) => c,
        };
        for clause in clauses {
            for action in &clause.actions {
                let bits = match &action.perms {
                    Perms::Bits { bits, cond_x } => {
                        let x = if *cond_x && (is_dir || mode & 0o111 != 0) {
                            0o111
                        } else {
                            0
                        };
                        (bits | x) & clause.who
                    }
                    Perms::Copy(from) => {
                        let triple = match from {
                            'u' => (mode >> 6) & 7,
                            'g' => (mode >> 3) & 7,
                            _ => mode & 7,
                        };
                        (triple * 0o111) & clause.who & 0o777
                    }
                };
                mode = match action.op {
                    '+' => mode | bits,
                    '-' => mode & !bits,
                    _ => (mode & !clause.who) | bits,
                };
            }
        }
        mode
    }
}

fn parse_clause(s: &str) -> Option<Clause> {
    let mut chars = s.chars().peekable();
    let mut who = 0;
    while let Some(&c) = chars.peek() {
        who |= match c {
            'u' => WHO_U,
            'g' => WHO_G,
            'o' => WHO_O,
            'a' => WHO_A,
            _ => break,
        };
        chars.next();
    }
    if who == 0 {
        who = WHO_A;
    }
    let mut actions = Vec::new();
    while let Some(op) = chars.next() {
        if !matches!(op, '+' | '-' | '=') {
            return None;
        }
        let mut bits = 0;
        let mut cond_x = false;
        let mut copy = None;
        while let Some(&c) = chars.peek() {
            match c {
                'r' => bits |= 0o444,
                'w' => bits |= 0o222,
                'x' => bits |= 0o111,
                'X' => cond_x = true,
                's' => bits |= 0o6000,
                't' => bits |= 0o1000,
                'u' | 'g' | 'o' if bits == 0 && !cond_x && copy.is_none() => copy = Some(c),
                '+' | '-' | '=' => break,
                _ => return None,
            }
            chars.next();
            if copy.is_some() && chars.peek().is_some_and(|c| !matches!(c, '+' | '-' | '=')) {
                return None;
            }
        }
        let perms = match copy {
            Some(from) => Perms::Copy(from),
            None => Perms::Bits { bits, cond_x },
        };
        actions.push(Action { op, perms });
    }
    if actions.is_empty() {
        return None;
    }
    Some(Clause { who, actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(spec: &str, mode: u32, is_dir: bool) -> u32 {
        ModeChange::parse(spec).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_modes() {
        assert_eq!(ModeChange::parse("755").unwrap(), ModeChange::Octal(0o755));
        assert_eq!(apply("1777", 0o644, true), 0o1777);
        assert_eq!(apply("0", 0o644, false), 0);
        assert!(ModeChange::parse("778").is_err());
        assert!(ModeChange::parse("77777").is_err());
    }

    #[test]
    fn symbolic_add_remove_set() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=r", 0o755, false), 0o444);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(apply("ug+w,o-r", 0o444, false), 0o660);
        assert_eq!(apply("u+r-w", 0o200, false), 0o400);
        assert_eq!(apply("o+t", 0o777, true), 0o1777);
        assert_eq!(apply("u+t", 0o777, true), 0o777);
        assert_eq!(apply("g+s", 0o750, true), 0o2750);
    }

    #[test]
    fn conditional_execute_and_copies() {
        assert_eq!(apply("a+X", 0o644, false), 0o644);
        assert_eq!(apply("a+X", 0o744, false), 0o755);
        assert_eq!(apply("a+X", 0o600, true), 0o711);
        assert_eq!(apply("g=u", 0o640, false), 0o660);
        assert_eq!(apply("o=g", 0o750, false), 0o755);
    }

    #[test]
    fn malformed_modes_are_rejected() {
        for bad in [
            "", "u", "u+q", "z+x", "u+x,", ",u+x", "g=ur", "+-x y", "rwx",
        ] {
            assert!(
                ModeChange::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert_eq!(
            ModeChange::parse("xyz").unwrap_err(),
            "chmod : mode 'xyz' does not match the expected pattern."
        );
    }
}
