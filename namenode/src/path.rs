//! Namespace paths as clients send them: absolute, split into checked components. A parsed
//! [`NsPath`] is normalized (no empty components, so `//a/` is `/a`) and every component is a
//! valid name: not empty, not `.` or `..`, no `/` or NUL, at most [`MAX_NAME`] bytes. Paths
//! are literal: nothing here (or anywhere in the namenode) follows symlinks.

use crate::error::NnError;

/// Longest component, in bytes.
pub const MAX_NAME: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsPath {
    comps: Vec<String>,
}

/// Checks one name as a new entry would carry it.
pub fn check_name(name: &str, path_for_errors: &str) -> Result<(), NnError> {
    if name.is_empty() {
        return Err(NnError::invalid(path_for_errors, "empty name"));
    }
    if name == "." || name == ".." {
        return Err(NnError::invalid(
            path_for_errors,
            format!("\"{name}\" is not a valid name"),
        ));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(NnError::invalid(
            path_for_errors,
            "a name may not contain '/' or NUL",
        ));
    }
    if name.len() > MAX_NAME {
        return Err(NnError::NameTooLong(path_for_errors.to_string()));
    }
    Ok(())
}

impl NsPath {
    pub fn root() -> Self {
        NsPath { comps: Vec::new() }
    }

    /// Parses an absolute path.
    pub fn parse(text: &str) -> Result<Self, NnError> {
        if !text.starts_with('/') {
            return Err(NnError::invalid(text, "path is not absolute"));
        }
        let mut comps = Vec::new();
        for c in text.split('/').filter(|c| !c.is_empty()) {
            check_name(c, text)?;
            comps.push(c.to_string());
        }
        Ok(NsPath { comps })
    }

    pub fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    pub fn comps(&self) -> &[String] {
        &self.comps
    }

    /// Number of components ("/" has none).
    pub fn depth(&self) -> usize {
        self.comps.len()
    }

    /// The last component, "" for the root.
    pub fn name(&self) -> &str {
        self.comps.last().map(String::as_str).unwrap_or("")
    }

    /// The parent path (the root's parent is the root).
    pub fn parent(&self) -> NsPath {
        let mut comps = self.comps.clone();
        comps.pop();
        NsPath { comps }
    }

    /// The path made of the first `n` components.
    pub fn prefix(&self, n: usize) -> NsPath {
        NsPath {
            comps: self.comps[..n.min(self.comps.len())].to_vec(),
        }
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &NsPath) -> bool {
        self.comps.len() >= other.comps.len() && self.comps[..other.comps.len()] == other.comps[..]
    }

    pub fn child(&self, name: &str) -> NsPath {
        let mut comps = self.comps.clone();
        comps.push(name.to_string());
        NsPath { comps }
    }

    /// The normalized text: `/` or `/a/b`.
    pub fn text(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for NsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.comps.is_empty() {
            return f.write_str("/");
        }
        for c in &self.comps {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_proto::namenode::ErrorCode;

    #[test]
    fn normalizes_repeated_and_trailing_slashes() {
        let p = NsPath::parse("//a//b/").unwrap();
        assert_eq!(p.comps(), ["a", "b"]);
        assert_eq!(p.to_string(), "/a/b");
        assert_eq!(NsPath::parse("/").unwrap().to_string(), "/");
        assert!(NsPath::parse("///").unwrap().is_root());
        assert_eq!(p.parent().to_string(), "/a");
        assert_eq!(p.name(), "b");
        assert_eq!(NsPath::root().parent(), NsPath::root());
    }

    #[test]
    fn rejects_relative_paths_and_bad_names() {
        let code = |s: &str| NsPath::parse(s).unwrap_err().code();
        assert_eq!(code("a/b"), ErrorCode::InvalidArgument);
        assert_eq!(code(""), ErrorCode::InvalidArgument);
        assert_eq!(code("/a/./b"), ErrorCode::InvalidArgument);
        assert_eq!(code("/a/../b"), ErrorCode::InvalidArgument);
        assert_eq!(code("/a\0b"), ErrorCode::InvalidArgument);
        let long = format!("/{}", "x".repeat(256));
        assert_eq!(code(&long), ErrorCode::NameTooLong);
        assert!(NsPath::parse(&format!("/{}", "x".repeat(255))).is_ok());
    }

    #[test]
    fn prefix_relations() {
        let a = NsPath::parse("/a").unwrap();
        let ab = NsPath::parse("/a/b").unwrap();
        let ax = NsPath::parse("/ax").unwrap();
        assert!(ab.starts_with(&a));
        assert!(!ax.starts_with(&a));
        assert!(a.starts_with(&NsPath::root()));
        assert_eq!(ab.prefix(1), a);
        assert_eq!(a.child("b"), ab);
    }

    #[test]
    fn check_name_rules() {
        assert!(check_name("ok", "/ok").is_ok());
        assert_eq!(
            check_name("a/b", "/x").unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            check_name("", "/x").unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
    }
}
