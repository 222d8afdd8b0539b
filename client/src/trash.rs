//! Trash, as `hdfs dfs -rm` uses it: [`Client::move_to_trash`] moves a path, in one rename, to
//! `/user/NAME/.Trash/Current/` under its full path (the directories on the way are made
//! first, the trash's own ones private to its owner); [`Client::expunge`] asks the namenode to
//! checkpoint the caller's trash and delete old checkpoints. Whether removals go to the trash
//! at all is the cluster's setting (`ClusterInfo`'s `trash_interval_ms`, 0: off).

use std::time::{SystemTime, UNIX_EPOCH};

use arbor_proto::namenode::{ExpungeReply, ExpungeRequest};

use crate::client::Client;
use arbor_proto::namenode::ErrorCode;

use crate::error::{Error, Result};

/// The directory holding every user's home.
pub const USERS: &str = "/user";
/// Mode of the trash directories made on the way to a moved path.
const TRASH_MODE: u32 = 0o700;
/// Mode of `/user` and of a home, when the trash has to make them.
const HOME_MODE: u32 = 0o755;

/// Where [`Client::move_to_trash`] left a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trashed {
    /// Moved to this path in the trash.
    Moved(String),
    /// The path is in the caller's trash already: removing it deletes it.
    InTrash,
}

/// The trash of `user`.
pub fn trash_root(user: &str) -> String {
    format!("{USERS}/{user}/.Trash")
}

/// Where `path` (absolute, normalised) goes in `root`'s current trash.
pub fn trash_target(root: &str, path: &str) -> String {
    format!("{root}/Current{path}")
}

fn contains(dir: &str, path: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

impl Client {
    /// How long removed paths stay in the trash, in milliseconds (0: the cluster has no trash).
    pub async fn trash_interval_ms(&self) -> Result<u64> {
        Ok(self.cluster_info().await?.trash_interval_ms)
    }

    /// Moves `path` (absolute) into the caller's trash. Refuses the trash itself and anything
    /// holding it; a path already in the trash is left for the caller to delete.
    pub async fn move_to_trash(&self, path: &str) -> Result<Trashed> {
        let root = trash_root(&self.identity().user);
        if contains(path, &root) {
            return Err(Error::invalid(format!(
                "Cannot move \"{path}\" to the trash, as it contains the trash. \
                 Consider using -skipTrash option"
            )));
        }
        if contains(&root, path) {
            return Ok(Trashed::InTrash);
        }
        let target = trash_target(&root, path);
        let home = format!("{USERS}/{}", self.identity().user);
        for dir in [USERS, home.as_str()] {
            match self.mkdir(dir, HOME_MODE, false).await {
                Ok(_) => {}
                Err(e) if e.code == ErrorCode::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        if let Some((parent, _)) = target.rsplit_once('/') {
            self.mkdir(parent, TRASH_MODE, true).await?;
        }
        match self.rename_noreplace(path, &target).await {
            Ok(()) => Ok(Trashed::Moved(target)),
            Err(e) if e.code == ErrorCode::AlreadyExists => {
                // Removed before under the same name: this one takes the time as a suffix.
                let millis = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let again = format!("{target}{millis}");
                self.rename_noreplace(path, &again).await?;
                Ok(Trashed::Moved(again))
            }
            Err(e) => Err(e),
        }
    }

    /// Checkpoints the caller's current trash and deletes the checkpoints older than the
    /// trash interval (every one with `immediate`).
    pub async fn expunge(&self, immediate: bool) -> Result<ExpungeReply> {
        let req = ExpungeRequest {
            ctx: self.ctx(),
            immediate,
        };
        self.call(req, self.scan_timeout(), |mut rpc, r| {
            Box::pin(async move { rpc.expunge(r).await })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_the_full_path_and_the_trash_is_recognised() {
        let root = trash_root("alice");
        assert_eq!(root, "/user/alice/.Trash");
        assert_eq!(
            trash_target(&root, "/data/x"),
            "/user/alice/.Trash/Current/data/x"
        );
        assert!(contains(&root, "/user/alice/.Trash/Current/x"));
        assert!(contains(&root, &root));
        assert!(!contains(&root, "/user/alice/.Trashy"));
        assert!(contains("/user", &root) && contains("/", &root));
        assert!(!contains("/user/al", &root));
    }
}
