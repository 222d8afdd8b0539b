//! Named kill points for crash tests: `ARBOR_FAULT=POINT[:LABEL][@N]` (several, comma
//! separated) makes the process SIGKILL itself at the N-th time (default the first) it reaches
//! POINT in a transaction labelled LABEL (any label when none is given). The two-phase commit
//! checks `before_prepare`, `after_prepare`, `after_primary_commit` and `after_commit`; a
//! single-shard commit checks `before_commit` and `after_commit`.
//!
//! The environment is read once; without `ARBOR_FAULT` a check is one atomic load.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms the kill points.
pub const FAULT_ENV: &str = "ARBOR_FAULT";

/// One armed kill point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    pub point: String,
    /// `None`: any transaction label matches.
    pub label: Option<String>,
    /// Fires on this matching hit (1 = the first).
    pub nth: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    #[error("empty fault point in {0:?}")]
    EmptyPoint(String),
    #[error("bad hit count in {0:?}: expected a number of at least 1 after '@'")]
    BadCount(String),
}

/// Parses `POINT[:LABEL][@N],…`; blank entries are ignored.
pub fn parse(spec: &str) -> Result<Vec<FaultSpec>, FaultSpecError> {
    let mut out = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (target, nth) = match entry.rsplit_once('@') {
            Some((target, n)) => match n.trim().parse::<u64>() {
                Ok(n) if n >= 1 => (target, n),
                _ => return Err(FaultSpecError::BadCount(entry.to_string())),
            },
            None => (entry, 1),
        };
        let (point, label) = match target.split_once(':') {
            Some((point, label)) => (point.trim(), Some(label.trim())),
            None => (target.trim(), None),
        };
        if point.is_empty() {
            return Err(FaultSpecError::EmptyPoint(entry.to_string()));
        }
        out.push(FaultSpec {
            point: point.to_string(),
            label: label.filter(|l| !l.is_empty()).map(str::to_string),
            nth,
        });
    }
    Ok(out)
}

/// Armed kill points with their hit counters.
#[derive(Debug)]
pub struct FaultPlan {
    specs: Vec<(FaultSpec, AtomicU64)>,
}

impl FaultPlan {
    pub fn new(specs: Vec<FaultSpec>) -> Self {
        Self {
            specs: specs.into_iter().map(|s| (s, AtomicU64::new(0))).collect(),
        }
    }

    /// Counts this hit against every spec it matches; returns the spec whose turn it is to fire.
    pub fn check(&self, point: &str, label: &str) -> Option<&FaultSpec> {
        let mut fired = None;
        for (spec, hits) in &self.specs {
            if spec.point != point || spec.label.as_deref().is_some_and(|l| l != label) {
                continue;
            }
            let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
            if n == spec.nth && fired.is_none() {
                fired = Some(spec);
            }
        }
        fired
    }
}

static PLAN: OnceLock<Option<FaultPlan>> = OnceLock::new();

fn load() -> Option<FaultPlan> {
    let raw = std::env::var(FAULT_ENV).ok()?;
    match parse(&raw) {
        Ok(specs) if specs.is_empty() => None,
        Ok(specs) => {
            tracing::warn!(spec = %raw, "fault injection armed");
            Some(FaultPlan::new(specs))
        }
        Err(e) => {
            tracing::error!(spec = %raw, error = %e, "ignoring {FAULT_ENV}");
            None
        }
    }
}

/// Kills the process at once if `ARBOR_FAULT` arms this point for this label and hit.
pub fn hit(point: &str, label: &str) {
    let Some(plan) = PLAN.get_or_init(load) else {
        return;
    };
    if plan.check(point, label).is_some() {
        // Straight to the stream (not eprintln!, which a test harness may hold back): the
        // line must be out before the process dies.
        let _ = writeln!(std::io::stderr(), "fault injected at {point}:{label}");
        // SAFETY: getpid and kill have no memory-safety preconditions; SIGKILL to ourselves
        // is exactly the crash this point simulates.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(point: &str, label: Option<&str>, nth: u64) -> FaultSpec {
        FaultSpec {
            point: point.into(),
            label: label.map(Into::into),
            nth,
        }
    }

    #[test]
    fn parses_points_labels_and_counts() {
        assert_eq!(
            parse("after_prepare:rename").unwrap(),
            vec![spec("after_prepare", Some("rename"), 1)]
        );
        assert_eq!(
            parse(" before_commit@3 , after_commit:create@2,").unwrap(),
            vec![
                spec("before_commit", None, 3),
                spec("after_commit", Some("create"), 2)
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(
            parse("after_prepare:").unwrap(),
            vec![spec("after_prepare", None, 1)]
        );
    }

    #[test]
    fn rejects_malformed_entries() {
        assert!(matches!(parse("x@0"), Err(FaultSpecError::BadCount(_))));
        assert!(matches!(parse("x@two"), Err(FaultSpecError::BadCount(_))));
        assert!(matches!(
            parse(":rename"),
            Err(FaultSpecError::EmptyPoint(_))
        ));
        assert!(matches!(parse("ok,@2"), Err(FaultSpecError::EmptyPoint(_))));
    }

    #[test]
    fn fires_on_the_nth_matching_hit_only() {
        let plan = FaultPlan::new(parse("after_prepare:rename@2").unwrap());
        assert!(plan.check("after_prepare", "mkdir").is_none());
        assert!(plan.check("before_prepare", "rename").is_none());
        assert!(plan.check("after_prepare", "rename").is_none());
        let fired = plan.check("after_prepare", "rename");
        assert_eq!(fired, Some(&spec("after_prepare", Some("rename"), 2)));
        assert!(plan.check("after_prepare", "rename").is_none());
    }

    #[test]
    fn a_point_without_label_matches_every_label() {
        let plan = FaultPlan::new(parse("after_commit").unwrap());
        assert!(plan.check("before_commit", "create").is_none());
        assert!(plan.check("after_commit", "create").is_some());
        // Only the first hit fires.
        assert!(plan.check("after_commit", "").is_none());
    }

    #[test]
    fn several_specs_count_independently() {
        let plan = FaultPlan::new(parse("after_commit:create@2,after_commit@3").unwrap());
        assert!(plan.check("after_commit", "create").is_none());
        let second = plan.check("after_commit", "create").cloned();
        assert_eq!(second, Some(spec("after_commit", Some("create"), 2)));
        let third = plan.check("after_commit", "mkdir").cloned();
        assert_eq!(third, Some(spec("after_commit", None, 3)));
    }
}
