//! Owner and group names as the CLI shows and accepts them: uids and gids print as names when
//! the local passwd/group database knows them and as numbers otherwise; `-chown` accepts either.
//! Lookups are cached for the life of one command, so a long listing asks NSS once per id.

use std::collections::HashMap;

use crate::identity::{Accounts, SystemAccounts};

/// A caching view of the account database.
pub struct Names {
    accounts: Box<dyn Accounts + Send + Sync>,
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Default for Names {
    fn default() -> Names {
        Names::new(Box::new(SystemAccounts))
    }
}

impl Names {
    pub fn new(accounts: Box<dyn Accounts + Send + Sync>) -> Names {
        Names {
            accounts,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// The user name of `uid`, or the number.
    pub fn user(&mut self, uid: u32) -> String {
        if let Some(name) = self.users.get(&uid) {
            return name.clone();
        }
        let name = self
            .accounts
            .user_by_uid(uid)
            .map(|a| a.name)
            .unwrap_or_else(|| uid.to_string());
        self.users.insert(uid, name.clone());
        name
    }

    /// The group name of `gid`, or the number.
    pub fn group(&mut self, gid: u32) -> String {
        if let Some(name) = self.groups.get(&gid) {
            return name.clone();
        }
        let name = self
            .accounts
            .group_by_gid(gid)
            .unwrap_or_else(|| gid.to_string());
        self.groups.insert(gid, name.clone());
        name
    }

    /// A uid from a number or a user name.
    pub fn uid_of(&self, s: &str) -> Option<u32> {
        if let Some(n) = number(s) {
            return Some(n);
        }
        self.accounts.user_by_name(s).map(|a| a.uid)
    }

    /// A gid from a number or a group name.
    pub fn gid_of(&self, s: &str) -> Option<u32> {
        if let Some(n) = number(s) {
            return Some(n);
        }
        self.accounts.group_by_name(s)
    }
}

fn number(s: &str) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::Account;

    /// alice (1001, group 100 "users"), bob (1002, 100); group "staff" = 50.
    pub struct FakeAccounts;

    impl Accounts for FakeAccounts {
        fn user_by_uid(&self, uid: u32) -> Option<Account> {
            match uid {
                1001 => self.user_by_name("alice"),
                1002 => self.user_by_name("bob"),
                _ => None,
            }
        }
        fn user_by_name(&self, name: &str) -> Option<Account> {
            let uid = match name {
                "alice" => 1001,
                "bob" => 1002,
                _ => return None,
            };
            Some(Account {
                uid,
                gid: 100,
                name: name.to_string(),
            })
        }
        fn group_by_name(&self, name: &str) -> Option<u32> {
            match name {
                "users" => Some(100),
                "staff" => Some(50),
                _ => None,
            }
        }
        fn group_by_gid(&self, gid: u32) -> Option<String> {
            match gid {
                100 => Some("users".into()),
                50 => Some("staff".into()),
                _ => None,
            }
        }
        fn groups_of(&self, _name: &str, primary: u32) -> Vec<u32> {
            vec![primary]
        }
    }

    pub fn fake_names() -> Names {
        Names::new(Box::new(FakeAccounts))
    }

    #[test]
    fn known_ids_print_as_names_unknown_as_numbers() {
        let mut n = fake_names();
        assert_eq!(n.user(1001), "alice");
        assert_eq!(n.user(4242), "4242");
        assert_eq!(n.group(50), "staff");
        assert_eq!(n.group(7), "7");
        // Cached answers stay the same.
        assert_eq!(n.user(1001), "alice");
    }

    #[test]
    fn names_and_numbers_parse() {
        let n = fake_names();
        assert_eq!(n.uid_of("bob"), Some(1002));
        assert_eq!(n.uid_of("77"), Some(77));
        assert_eq!(n.uid_of("mallory"), None);
        assert_eq!(n.gid_of("staff"), Some(50));
        assert_eq!(n.gid_of("12"), Some(12));
        assert_eq!(n.gid_of(""), None);
    }
}
