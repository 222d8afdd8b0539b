//! Path strings as clients write them: absolute namenode paths, or `arbor://host:port/path`
//! URLs whose authority names the namenode to ask. Also the small path algebra the CLI needs
//! (join, parent, last component, normalization), kept purely textual: the namenode is the
//! one authority on what a path names.

use crate::error::{Error, Result};

/// The URL scheme of Arbor paths.
pub const SCHEME: &str = "arbor://";

/// A path split into the namenode it names (if any) and the namenode path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` from an `arbor://host:port/…` URL; `None` for a plain path or `arbor:///…`.
    pub authority: Option<String>,
    pub path: String,
}

/// Splits `arbor://host:port/path` (or a plain path) into authority and path. Other URL
/// schemes are rejected: they name a different file system.
pub fn parse_target(path: &str) -> Result<Target> {
    if let Some(rest) = path.strip_prefix(SCHEME) {
        let (authority, p) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = if authority.is_empty() {
            None
        } else {
            if !authority.contains(':') || authority.contains('@') {
                return Err(Error::invalid(format!(
                    "{path}: expected {SCHEME}host:port/path"
                )));
            }
            Some(authority.to_string())
        };
        return Ok(Target {
            authority,
            path: p.to_string(),
        });
    }
    if let Some((scheme, _)) = path.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(Error::invalid(format!(
            "Wrong FS: {path}, expected: {SCHEME}host:port/path"
        )));
    }
    Ok(Target {
        authority: None,
        path: path.to_string(),
    })
}

/// Collapses repeated slashes and `.` components and resolves `..` textually (never above the
/// root); the result is absolute when `path` is. A trailing slash is dropped.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() && !absolute {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// `dir` + `/` + `name`, without doubling the slash; `"."` as the directory yields `name`
/// alone (how HDFS shows children of the working directory).
pub fn join(dir: &str, name: &str) -> String {
    if dir == "." || dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The last component of a path (`""` for the root).
pub fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// The directory holding `path`'s last component (`/` for top-level names and the root).
pub fn parent(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => trimmed[..i].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_namenode() {
        assert_eq!(
            parse_target("arbor://10.0.0.1:8020/a/b").unwrap(),
            Target {
                authority: Some("10.0.0.1:8020".into()),
                path: "/a/b".into()
            }
        );
        assert_eq!(
            parse_target("arbor://h:1").unwrap(),
            Target {
                authority: Some("h:1".into()),
                path: "/".into()
            }
        );
        assert_eq!(parse_target("arbor:///x").unwrap().authority, None);
        assert_eq!(parse_target("/plain").unwrap().path, "/plain");
        assert!(parse_target("hdfs://nn:8020/x").is_err());
        assert!(parse_target("arbor://nohost/x").is_err());
    }

    #[test]
    fn normalizes_textually() {
        assert_eq!(normalize("//a///b/"), "/a/b");
        assert_eq!(normalize("/a/./b/../c"), "/a/c");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(normalize("a/../.."), "..");
        assert_eq!(normalize("./"), ".");
    }

    #[test]
    fn joins_and_splits() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(join(".", "b"), "b");
        assert_eq!(basename("/a/b/"), "b");
        assert_eq!(basename("/"), "");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
    }
}
