//! Who is calling: the uid/gid of each FUSE request become the identity of the namenode call,
//! with the uid's supplementary groups from the account database (getgrouplist), cached.
//! Invariant: a cached identity is at most [`GROUPS_TTL`] old, so group changes take effect
//! without remounting; each identity has one client (one client id, so its retries stay
//! exactly-once).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arbor_client::identity::{Accounts, SystemAccounts};
use arbor_client::{Client, Identity};

/// How long a uid's group list is trusted.
pub const GROUPS_TTL: Duration = Duration::from_secs(60);

struct Cached {
    client: Client,
    at: Instant,
}

/// Clients per (uid, gid), made from one base client (sharing its channels).
pub struct Callers {
    base: Client,
    cache: Mutex<HashMap<(u32, u32), Cached>>,
}

impl Callers {
    pub fn new(base: Client) -> Callers {
        Callers {
            base,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client acting as the caller of a request.
    pub fn client(&self, uid: u32, gid: u32) -> Client {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&(uid, gid))
            && c.at.elapsed() < GROUPS_TTL
        {
            return c.client.clone();
        }
        let id = identity_of(uid, gid, &SystemAccounts);
        let client = self.base.clone().with_identity(id);
        cache.insert(
            (uid, gid),
            Cached {
                client: client.clone(),
                at: Instant::now(),
            },
        );
        client
    }
}

/// The identity of a request from `uid` with primary group `gid`: that group first, then
/// the groups the account database gives the user.
pub fn identity_of(uid: u32, gid: u32, accounts: &dyn Accounts) -> Identity {
    let mut gids = vec![gid];
    let user = match accounts.user_by_uid(uid) {
        Some(account) => {
            for g in accounts.groups_of(&account.name, account.gid) {
                if !gids.contains(&g) {
                    gids.push(g);
                }
            }
            account.name
        }
        None => uid.to_string(),
    };
    Identity { uid, gids, user }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbor_client::identity::Account;

    struct Fake;
    impl Accounts for Fake {
        fn user_by_uid(&self, uid: u32) -> Option<Account> {
            (uid == 1001).then(|| Account {
                uid,
                gid: 100,
                name: "alice".into(),
            })
        }
        fn user_by_name(&self, _: &str) -> Option<Account> {
            None
        }
        fn group_by_name(&self, _: &str) -> Option<u32> {
            None
        }
        fn group_by_gid(&self, _: u32) -> Option<String> {
            None
        }
        fn groups_of(&self, _: &str, primary: u32) -> Vec<u32> {
            vec![primary, 27]
        }
    }

    #[test]
    fn request_gid_first_then_supplementary_groups() {
        let id = identity_of(1001, 50, &Fake);
        assert_eq!(id.gids, vec![50, 100, 27]);
        assert_eq!(id.user, "alice");
        let id = identity_of(4242, 4242, &Fake);
        assert_eq!(id.gids, vec![4242]);
        assert_eq!(id.user, "4242");
    }
}
