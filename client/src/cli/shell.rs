//! What every `arbor dfs` command runs with: the client, the user's home directory (relative
//! paths resolve against `/user/<name>`, as in HDFS), the name cache, and the two output
//! streams. It keeps the one rule of HDFS's shell about failures: each failing argument prints
//! one line on stderr and the command goes on with the next; the exit status is 1 if any failed.

use std::io::Write;

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::InodeKind;

use arbor_proto::namenode::ErrorCode;

use crate::cli::glob::Glob;
use crate::cli::messages::{Subject, error_line};
use crate::cli::names::Names;
use crate::client::Client;
use crate::error::Error;
use crate::paths::{SCHEME, join, normalize, parse_target};

/// A path argument: as the user typed it (for output) and as the namenode needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArg {
    pub shown: String,
    pub abs: String,
}

impl PathArg {
    /// The entry `name` inside this directory.
    pub fn child(&self, name: &str) -> PathArg {
        PathArg {
            shown: join(&self.shown, name),
            abs: join(&self.abs, name),
        }
    }
}

/// `true` for directories.
pub fn is_dir(st: &FileStatus) -> bool {
    st.kind() == InodeKind::Directory
}

/// The state of one `arbor dfs` run.
pub struct Shell {
    pub client: Client,
    pub names: Names,
    home: String,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    failed: bool,
}

impl Shell {
    pub fn new(client: Client, out: Box<dyn Write + Send>, err: Box<dyn Write + Send>) -> Shell {
        let home = format!("/user/{}", client.identity().user);
        Shell {
            client,
            names: Names::default(),
            home,
            out,
            err,
            failed: false,
        }
    }

    /// Replaces the name database (tests use a fixed one).
    pub fn with_names(mut self, names: Names) -> Shell {
        self.names = names;
        self
    }

    pub fn home(&self) -> &str {
        &self.home
    }

    /// Resolves a typed path: absolute paths and URLs stay, relative ones join the home dir.
    pub fn arg(&self, typed: &str) -> PathArg {
        PathArg {
            shown: typed.to_string(),
            abs: resolve(&self.home, typed),
        }
    }

    /// The paths an argument names: itself, or for a pattern (`/logs/*.tmp`, `/d/{a,b}`) every
    /// existing match in name order, shown in the form typed. A pattern matching nothing is
    /// reported as a missing path.
    pub async fn expand(&mut self, command: &str, typed: &str) -> Vec<PathArg> {
        self.expand_with(command, typed, true).await
    }

    /// [`Shell::expand`], optionally silent about a pattern that matches nothing.
    pub async fn expand_with(
        &mut self,
        command: &str,
        typed: &str,
        report_missing: bool,
    ) -> Vec<PathArg> {
        let arg = self.arg(typed);
        if !has_glob(typed) {
            return vec![arg];
        }
        let (prefix, path) = match parse_target(&arg.abs) {
            Ok(t) => (
                t.authority
                    .map(|a| format!("{SCHEME}{a}"))
                    .unwrap_or_default(),
                t.path,
            ),
            Err(e) => {
                self.fail(command, &e, Subject::Path(typed));
                return Vec::new();
            }
        };
        // Candidates with whether each is known to be a directory.
        let mut current: Vec<(String, Option<bool>)> = vec![("/".to_string(), Some(true))];
        let mut unchecked = false;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            if !has_glob(comp) {
                current = current
                    .into_iter()
                    .map(|(d, _)| (join(&d, comp), None))
                    .collect();
                unchecked = true;
                continue;
            }
            let glob = match Glob::new(comp, false) {
                Ok(g) => g,
                Err(msg) => {
                    self.fail_line(&format!("{command}: {msg}"));
                    return Vec::new();
                }
            };
            let mut next = Vec::new();
            for (dir, known) in current {
                let full = format!("{prefix}{dir}");
                let listable = match known {
                    Some(known) => known,
                    None => self.client.stat(&full).await.is_ok_and(|st| is_dir(&st)),
                };
                if !listable {
                    continue;
                }
                match self.client.list(&full).await {
                    Ok(entries) => next.extend(
                        entries
                            .into_iter()
                            .filter(|e| glob.matches(&e.name))
                            .map(|e| (join(&dir, &e.name), e.status.map(|st| is_dir(&st)))),
                    ),
                    Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::NotADirectory) => {}
                    Err(e) => self.fail(command, &e, Subject::Path(&full)),
                }
            }
            current = next;
            unchecked = false;
        }
        let mut matches = Vec::new();
        for (path, _) in current {
            let full = format!("{prefix}{path}");
            if unchecked && !self.client.exists(&full).await.unwrap_or(false) {
                continue;
            }
            matches.push(path);
        }
        matches.sort();
        if matches.is_empty() && report_missing {
            self.fail_line(&format!("{command}: `{typed}': No such file or directory"));
        }
        let relative = !typed.starts_with('/') && !typed.contains("://");
        let home = format!("{}/", self.home);
        matches
            .into_iter()
            .map(|m| PathArg {
                shown: match m.strip_prefix(&home) {
                    Some(rel) if relative => rel.to_string(),
                    _ => format!("{prefix}{m}"),
                },
                abs: format!("{prefix}{m}"),
            })
            .collect()
    }

    /// Writes raw bytes to stdout; `false` when stdout is closed (the reader went away).
    pub fn write_out(&mut self, bytes: &[u8]) -> bool {
        self.out.write_all(bytes).is_ok()
    }

    /// Flushes stdout (`-tail -f` shows each new piece at once).
    pub fn flush_out(&mut self) {
        let _ = self.out.flush();
    }

    pub fn println(&mut self, line: &str) {
        // A closed stdout (`| head`) is not a failure of the command.
        let _ = writeln!(self.out, "{line}");
    }

    /// Reports a failed argument as HDFS does and marks the run failed.
    pub fn fail(&mut self, command: &str, err: &Error, subject: Subject<'_>) {
        let line = error_line(command, err, subject);
        self.fail_line(&line);
    }

    /// Prints a ready-made error line on stderr and marks the run failed.
    pub fn fail_line(&mut self, line: &str) {
        let _ = self.out.flush();
        let _ = writeln!(self.err, "{line}");
        self.failed = true;
    }

    /// Marks the run failed without printing (`-test`).
    pub fn set_failed(&mut self) {
        self.failed = true;
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Flushes output and returns the exit status.
    pub fn finish(mut self) -> i32 {
        let _ = self.out.flush();
        let _ = self.err.flush();
        i32::from(self.failed)
    }
}

/// Whether a path holds pattern characters that are not escaped with `\\`.
pub fn has_glob(path: &str) -> bool {
    let mut escaped = false;
    for c in path.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '*' | '?' | '[' | '{' => return true,
            _ => {}
        }
    }
    false
}

/// A typed path resolved against `home` when relative.
pub fn resolve(home: &str, typed: &str) -> String {
    if typed.starts_with('/') || typed.starts_with(SCHEME) || typed.contains("://") {
        typed.to_string()
    } else {
        normalize(&join(home, typed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_home() {
        assert_eq!(resolve("/user/alice", "data/x"), "/user/alice/data/x");
        assert_eq!(resolve("/user/alice", "."), "/user/alice");
        assert_eq!(resolve("/user/alice", ".."), "/user");
        assert_eq!(resolve("/user/alice", "/abs"), "/abs");
        assert_eq!(resolve("/user/alice", "arbor://h:1/x"), "arbor://h:1/x");
    }

    #[test]
    fn patterns_are_recognised_unless_escaped() {
        assert!(has_glob("/logs/*.tmp"));
        assert!(has_glob("/d/{a,b}"));
        assert!(has_glob("part-[0-9]"));
        assert!(has_glob("a?"));
        assert!(!has_glob("/plain/path"));
        assert!(!has_glob("/odd/\\*name"));
    }

    #[test]
    fn children_keep_the_typed_form() {
        let a = PathArg {
            shown: ".".into(),
            abs: "/user/alice".into(),
        };
        assert_eq!(
            a.child("f"),
            PathArg {
                shown: "f".into(),
                abs: "/user/alice/f".into()
            }
        );
        let u = PathArg {
            shown: "arbor://h:1/".into(),
            abs: "arbor://h:1/".into(),
        };
        assert_eq!(u.child("d").abs, "arbor://h:1/d");
    }
}
