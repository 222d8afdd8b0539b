//! Name patterns for `-find -name/-iname`, with the syntax of Hadoop's glob: `*` (any run),
//! `?` (one character), `[abc]`, `[a-z]`, `[!x]` / `[^x]` (classes), `{a,b}` (alternatives,
//! nestable) and `\` escapes. A pattern is compiled once into alternative token lists; matching
//! a name is linear-time backtracking over one star at a time.

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    alternatives: Vec<Vec<Token>>,
    fold_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    AnyOne,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// Compiles `pattern`; `fold_case` makes it match regardless of case (`-iname`).
    pub fn new(pattern: &str, fold_case: bool) -> Result<Glob, String> {
        let alternatives = expand_braces(pattern)?
            .iter()
            .map(|alt| tokenize(alt, fold_case))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Glob {
            alternatives,
            fold_case,
        })
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = if self.fold_case {
            name.chars().flat_map(char::to_lowercase).collect()
        } else {
            name.chars().collect()
        };
        self.alternatives.iter().any(|t| match_tokens(t, &chars))
    }
}

/// Expands `{a,b}` groups into the full list of alternative patterns (escapes kept).
fn expand_braces(pattern: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    // Find the first top-level brace group, honouring escapes and classes.
    let mut i = 0;
    let mut in_class = false;
    let mut open = None;
    let mut depth = 0;
    let mut commas = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => {
                if depth == 0 {
                    open = Some(i);
                }
                depth += 1;
            }
            ',' if !in_class && depth == 1 => commas.push(i),
            '}' if !in_class && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let start = open.unwrap_or(0);
                    let prefix: String = chars[..start].iter().collect();
                    let suffix: String = chars[i + 1..].iter().collect();
                    let mut bounds = vec![start];
                    bounds.extend(&commas);
                    bounds.push(i);
                    let mut out = Vec::new();
                    for w in bounds.windows(2) {
                        let middle: String = chars[w[0] + 1..w[1]].iter().collect();
                        for tail in expand_braces(&format!("{middle}{suffix}"))? {
                            out.push(format!("{prefix}{tail}"));
                        }
                    }
                    return Ok(out);
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return Err(format!("Unclosed group near index {}", open.unwrap_or(0)));
    }
    Ok(vec![pattern.to_string()])
}

fn fold(c: char, fold_case: bool) -> char {
    if fold_case {
        c.to_lowercase().next().unwrap_or(c)
    } else {
        c
    }
}

fn tokenize(pattern: &str, fold_case: bool) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let next = chars
                    .get(i + 1)
                    .ok_or_else(|| "Illegal file pattern: trailing backslash".to_string())?;
                out.push(Token::Char(fold(*next, fold_case)));
                i += 2;
                continue;
            }
            '*' => {
                if out.last() != Some(&Token::AnyRun) {
                    out.push(Token::AnyRun);
                }
            }
            '?' => out.push(Token::AnyOne),
            '[' => {
                let (token, next) = class(&chars, i, fold_case)?;
                out.push(token);
                i = next;
                continue;
            }
            c => out.push(Token::Char(fold(c, fold_case))),
        }
        i += 1;
    }
    Ok(out)
}

/// Parses a class starting at `chars[start] == '['`; returns it and the index after `]`.
fn class(chars: &[char], start: usize, fold_case: bool) -> Result<(Token, usize), String> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(format!("Unclosed character class near index {start}"));
        };
        if c == ']' && !first {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *chars
                .get(i)
                .ok_or_else(|| format!("Unclosed character class near index {start}"))?
        } else {
            c
        };
        i += 1;
        let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let hi = chars[i + 1];
            i += 2;
            hi
        } else {
            lo
        };
        if hi < lo {
            return Err(format!("Illegal character range near index {start}"));
        }
        if fold_case {
            ranges.push((fold(lo, true), fold(hi, true)));
        }
        ranges.push((lo, hi));
    }
}

fn single(token: &Token, c: char) -> bool {
    match token {
        Token::Char(t) => *t == c,
        Token::AnyOne => true,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
        }
        Token::AnyRun => false,
    }
}

fn match_tokens(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if t < tokens.len() && tokens[t] == Token::AnyRun {
            star = Some((t, n));
            t += 1;
        } else if t < tokens.len() && single(&tokens[t], name[n]) {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            // Let the last star swallow one more character and retry from there.
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern, false).unwrap().matches(name)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*.txt", "notes.txt"));
        assert!(m("*.txt", ".txt"));
        assert!(!m("*.txt", "notes.txt.bak"));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("f?le", "file"));
        assert!(!m("f?le", "fle"));
        assert!(m("*", ""));
        assert!(!m("?", ""));
        assert!(m("part-*", "part-00000"));
    }

    #[test]
    fn classes() {
        assert!(m("[abc]x", "bx"));
        assert!(!m("[abc]x", "dx"));
        assert!(m("file[0-9]", "file7"));
        assert!(!m("file[0-9]", "filex"));
        assert!(m("[!a]*", "bcd"));
        assert!(!m("[^a]*", "abc"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(Glob::new("[abc", false).is_err());
        assert!(Glob::new("[z-a]", false).is_err());
    }

    #[test]
    fn alternatives_and_escapes() {
        assert!(m("*.{txt,csv}", "a.csv"));
        assert!(m("*.{txt,csv}", "a.txt"));
        assert!(!m("*.{txt,csv}", "a.json"));
        assert!(m("{a,b{c,d}}x", "bdx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\{b", "a{b"));
        assert!(Glob::new("{a,b", false).is_err());
    }

    #[test]
    fn case_folding_for_iname() {
        let g = Glob::new("*.TXT", true).unwrap();
        assert!(g.matches("notes.txt"));
        assert!(g.matches("NOTES.Txt"));
        assert!(!Glob::new("*.TXT", false).unwrap().matches("notes.txt"));
        assert!(Glob::new("[A-C]*", true).unwrap().matches("beta"));
    }

    #[test]
    fn non_ascii_names() {
        assert!(m("caf?", "café"));
        assert!(m("*é", "résumé"));
    }
}
