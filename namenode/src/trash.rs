//! Trash, as HDFS keeps it: a removed path is moved (by the client, one rename) to
//! `/user/NAME/.Trash/Current/` under its full path; a checkpoint renames `Current` to the
//! time it was made (`yyMMddHHmmss`, UTC); checkpoints older than the trash interval are
//! deleted through the recursive delete (one small transaction each, the rows go in the
//! background). `Expunge` does this for the caller's own trash; the leader does it for every
//! user's trash once per interval, so a removed path lives between one and two intervals.
//!
//! Invariants: only names that read as checkpoint times are ever deleted here, so `Current`
//! and anything a user put into `.Trash` by hand stay; a checkpoint is made by a rename that
//! does not replace, so two expunges at once cannot merge or lose checkpoints.

use std::time::Duration;

use arbor_proto::namenode::ExpungeReply;
use arbor_proto::namenode::delete_request::Expect;
use chrono::{DateTime, NaiveDateTime, Utc};
use tokio::sync::watch;

use crate::error::NnError;
use crate::ops::{Namespace, delete, list, rename};
use crate::perm::Caller;
use crate::txn::Store;

/// The directory holding every user's home (and so every trash).
pub const USERS: &str = "/user";
/// A trash's name in its user's home.
pub const TRASH: &str = ".Trash";
/// Where removed paths go until the next checkpoint.
pub const CURRENT: &str = "Current";
/// How checkpoints are named (their creation time, UTC).
const CHECKPOINT_FORMAT: &str = "%y%m%d%H%M%S";
/// Entries listed per page.
const PAGE: u32 = 1000;

static TRASH_DELETED: std::sync::LazyLock<arbor_proto::metrics::prometheus::IntCounter> =
    std::sync::LazyLock::new(|| {
        arbor_proto::metrics::counter(
            "arbor_namenode_trash_checkpoints_deleted_total",
            "Trash checkpoints the leader deleted once older than the trash interval.",
        )
    });

/// The trash of user `user`.
pub fn root_of(user: &str) -> String {
    format!("{USERS}/{user}/{TRASH}")
}

/// The name of a checkpoint made at `at`.
pub fn checkpoint_name(at: DateTime<Utc>) -> String {
    at.format(CHECKPOINT_FORMAT).to_string()
}

/// When the checkpoint named `name` was made, if `name` is one (`yyMMddHHmmss`, maybe with a
/// `-N` suffix when two were made in one second).
pub fn checkpoint_time(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.split_once('-').map_or(name, |(s, _)| s);
    if stamp.len() != 12 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, CHECKPOINT_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// Checkpoints `user`'s current trash and deletes the checkpoints older than `interval` (all
/// of them when `immediate`). Answered for `caller`, who must be able to do each step.
pub async fn expunge<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    user: &str,
    interval: Duration,
    immediate: bool,
) -> Result<ExpungeReply, NnError> {
    let root = root_of(user);
    let now = Utc::now();
    let mut reply = ExpungeReply::default();
    let current = format!("{root}/{CURRENT}");
    let base = format!("{root}/{}", checkpoint_name(now));
    for attempt in 0..100 {
        let target = match attempt {
            0 => base.clone(),
            n => format!("{base}-{n}"),
        };
        match rename::rename(ns, caller, &current, &target, true).await {
            Ok(()) => {
                reply.checkpoint = target;
                break;
            }
            Err(NnError::AlreadyExists(_)) => continue,
            Err(NnError::NotFound(_)) => break,
            Err(e) => return Err(e),
        }
    }
    for name in names_in(ns, caller, &root).await? {
        let Some(made) = checkpoint_time(&name) else {
            continue;
        };
        let age = (now - made).to_std().unwrap_or_default();
        if immediate || age >= interval {
            let path = format!("{root}/{name}");
            match delete::delete(ns, caller, &path, true, Expect::Any).await {
                Ok(_) | Err(NnError::NotFound(_)) => reply.deleted.push(path),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(reply)
}

/// The names in directory `dir`, page by page (none when it is missing or not a directory).
async fn names_in<S: Store>(
    ns: &Namespace<S>,
    caller: &Caller,
    dir: &str,
) -> Result<Vec<String>, NnError> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = match list::list(ns, caller, dir, &after, PAGE).await {
            Ok(p) => p,
            Err(NnError::NotFound(_)) | Err(NnError::NotADirectory(_)) => return Ok(out),
            Err(e) => return Err(e),
        };
        out.extend(page.entries.iter().map(|e| e.name.clone()));
        match (page.more, page.entries.last()) {
            (true, Some(last)) => after = last.name.clone(),
            _ => return Ok(out),
        }
    }
}

/// Empties every user's trash once per `interval` while this namenode leads, until `stop`
/// turns true. An interval of zero turns trash off: nothing runs.
pub async fn run<S: Store>(
    ns: std::sync::Arc<Namespace<S>>,
    leader: watch::Receiver<bool>,
    interval: Duration,
    stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    let root = Caller::root();
    crate::leader::every_while_leading(interval, leader, stop, || async {
        let homes = match names_in(&ns, &root, USERS).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "listing the users' homes for trash failed");
                return;
            }
        };
        for user in homes {
            match expunge(&ns, &root, &user, interval, false).await {
                Ok(r) => {
                    if !r.checkpoint.is_empty() {
                        tracing::info!(checkpoint = %r.checkpoint, "trash checkpoint made");
                    }
                    for path in r.deleted {
                        tracing::info!(%path, "old trash checkpoint deleted");
                        TRASH_DELETED.inc();
                    }
                }
                Err(e) => tracing::warn!(user, error = %e, "emptying the trash failed"),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn checkpoint_names_read_back_as_their_time() {
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 19, 5, 7).unwrap();
        assert_eq!(checkpoint_name(at), "261204190507");
        assert_eq!(checkpoint_time("261204190507"), Some(at));
        assert_eq!(checkpoint_time("261204190507-2"), Some(at));
        for other in ["Current", "2612041905", "26120419050x", "261399190507", ""] {
            assert_eq!(checkpoint_time(other), None, "{other}");
        }
        assert_eq!(root_of("alice"), "/user/alice/.Trash");
    }
}
