//! Who the client says it is: a uid, its groups (primary first) and a user name for messages.
//! The namenode trusts this identity as HDFS trusts "simple" authentication; it comes from the
//! process, or from `ARBOR_USER` (`uid[:gid[,gid…]]` or a user name) resolved through the
//! local passwd/group database. The invariant kept: `gids` is never empty and holds no
//! duplicates, the primary group first.

use crate::error::{Error, Result};

/// The environment variable that overrides the process identity.
pub const USER_ENV: &str = "ARBOR_USER";

/// A caller's identity as sent in every request's call context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gids: Vec<u32>,
    pub user: String,
}

/// The user part of an `ARBOR_USER` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Uid(u32),
    Name(String),
}

/// A parsed `ARBOR_USER` value, before it is resolved against the account database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: UserRef,
    /// Groups named explicitly, as numbers or group names; `None` takes them from the database.
    pub groups: Option<Vec<UserRef>>,
}

/// A passwd entry, reduced to what an identity needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
}

/// The local account database (passwd and group), behind a trait so resolution is testable.
pub trait Accounts {
    fn user_by_uid(&self, uid: u32) -> Option<Account>;
    fn user_by_name(&self, name: &str) -> Option<Account>;
    fn group_by_name(&self, name: &str) -> Option<u32>;
    fn group_by_gid(&self, gid: u32) -> Option<String>;
    /// Every group `name` belongs to, `primary` included.
    fn groups_of(&self, name: &str, primary: u32) -> Vec<u32>;
}

/// The system's passwd/group database through libc (NSS).
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user_by_uid(&self, uid: u32) -> Option<Account> {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
        Some(Account {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: user.name,
        })
    }

    fn user_by_name(&self, name: &str) -> Option<Account> {
        let user = nix::unistd::User::from_name(name).ok()??;
        Some(Account {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: user.name,
        })
    }

    fn group_by_name(&self, name: &str) -> Option<u32> {
        let group = nix::unistd::Group::from_name(name).ok()??;
        Some(group.gid.as_raw())
    }

    fn group_by_gid(&self, gid: u32) -> Option<String> {
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok()??;
        Some(group.name)
    }

    fn groups_of(&self, name: &str, primary: u32) -> Vec<u32> {
        let Ok(cname) = std::ffi::CString::new(name) else {
            return vec![primary];
        };
        match nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(primary)) {
            Ok(groups) => groups.into_iter().map(|g| g.as_raw()).collect(),
            Err(_) => vec![primary],
        }
    }
}

impl Identity {
    /// This process's identity, or the one `ARBOR_USER` names. An `ARBOR_USER` that does not
    /// resolve is reported and ignored; use [`Identity::try_current`] to treat it as an error.
    pub fn current() -> Identity {
        match Identity::try_current() {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("ignoring {USER_ENV}: {e}");
                Identity::of_process()
            }
        }
    }

    /// Like [`Identity::current`], but an unusable `ARBOR_USER` is an error.
    pub fn try_current() -> Result<Identity> {
        match std::env::var(USER_ENV) {
            Ok(spec) if !spec.trim().is_empty() => Identity::from_spec(&spec),
            _ => Ok(Identity::of_process()),
        }
    }

    /// The real uid, gid and supplementary groups of this process.
    pub fn of_process() -> Identity {
        let uid = nix::unistd::getuid().as_raw();
        let primary = nix::unistd::getgid().as_raw();
        let mut gids = vec![primary];
        if let Ok(groups) = nix::unistd::getgroups() {
            gids.extend(groups.into_iter().map(|g| g.as_raw()));
        }
        let user = SystemAccounts
            .user_by_uid(uid)
            .map(|a| a.name)
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| uid.to_string());
        Identity {
            uid,
            gids: dedup(gids),
            user,
        }
    }

    /// Resolves an `ARBOR_USER` value against the system's account database.
    pub fn from_spec(spec: &str) -> Result<Identity> {
        resolve(&parse_spec(spec)?, &SystemAccounts)
    }

    /// The primary group.
    pub fn gid(&self) -> u32 {
        self.gids.first().copied().unwrap_or(self.uid)
    }
}

/// Parses `uid[:gid[,gid…]]` or `name[:group[,group…]]` (groups as numbers or names).
pub fn parse_spec(spec: &str) -> Result<UserSpec> {
    let spec = spec.trim();
    let (user, groups) = match spec.split_once(':') {
        Some((user, groups)) => (user, Some(groups)),
        None => (spec, None),
    };
    let user = parse_ref(user)
        .ok_or_else(|| Error::invalid(format!("{USER_ENV}: bad user '{user}' in '{spec}'")))?;
    let groups = match groups {
        None => None,
        Some(list) => {
            let parsed: Option<Vec<UserRef>> = list.split(',').map(parse_ref).collect();
            match parsed {
                Some(groups) if !groups.is_empty() => Some(groups),
                _ => {
                    return Err(Error::invalid(format!(
                        "{USER_ENV}: bad group list '{list}' in '{spec}'"
                    )));
                }
            }
        }
    };
    Ok(UserSpec { user, groups })
}

fn parse_ref(s: &str) -> Option<UserRef> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == ',' || c == ':') {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(UserRef::Uid);
    }
    Some(UserRef::Name(s.to_string()))
}

/// Turns a parsed spec into an identity. A numeric uid need not exist in the database (its
/// primary group is then the uid itself, as for a user private group); a name must.
pub fn resolve(spec: &UserSpec, accounts: &dyn Accounts) -> Result<Identity> {
    let (uid, account) = match &spec.user {
        UserRef::Uid(uid) => (*uid, accounts.user_by_uid(*uid)),
        UserRef::Name(name) => {
            let account = accounts
                .user_by_name(name)
                .ok_or_else(|| Error::invalid(format!("{USER_ENV}: unknown user '{name}'")))?;
            (account.uid, Some(account))
        }
    };
    let user = account
        .as_ref()
        .map(|a| a.name.clone())
        .unwrap_or_else(|| uid.to_string());
    let gids = match &spec.groups {
        Some(groups) => groups
            .iter()
            .map(|g| match g {
                UserRef::Uid(gid) => Ok(*gid),
                UserRef::Name(name) => accounts
                    .group_by_name(name)
                    .ok_or_else(|| Error::invalid(format!("{USER_ENV}: unknown group '{name}'"))),
            })
            .collect::<Result<Vec<u32>>>()?,
        None => match &account {
            Some(a) => {
                let mut gids = vec![a.gid];
                gids.extend(accounts.groups_of(&a.name, a.gid));
                gids
            }
            None => vec![uid],
        },
    };
    Ok(Identity {
        uid,
        gids: dedup(gids),
        user,
    })
}

fn dedup(gids: Vec<u32>) -> Vec<u32> {
    let mut out = Vec::with_capacity(gids.len());
    for g in gids {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    impl Accounts for Fake {
        fn user_by_uid(&self, uid: u32) -> Option<Account> {
            (uid == 1001).then(|| Account {
                uid: 1001,
                gid: 100,
                name: "alice".into(),
            })
        }
        fn user_by_name(&self, name: &str) -> Option<Account> {
            (name == "alice").then(|| Account {
                uid: 1001,
                gid: 100,
                name: "alice".into(),
            })
        }
        fn group_by_name(&self, name: &str) -> Option<u32> {
            (name == "staff").then_some(50)
        }
        fn group_by_gid(&self, gid: u32) -> Option<String> {
            (gid == 50).then(|| "staff".to_string())
        }
        fn groups_of(&self, _name: &str, primary: u32) -> Vec<u32> {
            vec![primary, 27, 100]
        }
    }

    #[test]
    fn parses_numeric_forms() {
        assert_eq!(
            parse_spec("1000").unwrap(),
            UserSpec {
                user: UserRef::Uid(1000),
                groups: None
            }
        );
        assert_eq!(
            parse_spec(" 1000:20,30 ").unwrap(),
            UserSpec {
                user: UserRef::Uid(1000),
                groups: Some(vec![UserRef::Uid(20), UserRef::Uid(30)])
            }
        );
        assert_eq!(
            parse_spec("alice:staff").unwrap().groups,
            Some(vec![UserRef::Name("staff".into())])
        );
    }

    #[test]
    fn rejects_malformed_specs() {
        for bad in [
            "",
            ":",
            "1000:",
            "1000:1,,2",
            "a b",
            "1000:2:3",
            "99999999999",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn resolves_names_and_groups() {
        let id = resolve(&parse_spec("alice").unwrap(), &Fake).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 1001,
                gids: vec![100, 27],
                user: "alice".into()
            }
        );
        let id = resolve(&parse_spec("1001:staff,7").unwrap(), &Fake).unwrap();
        assert_eq!(id.gids, vec![50, 7]);
        assert_eq!(id.user, "alice");
        assert_eq!(id.gid(), 50);
    }

    #[test]
    fn unknown_uid_gets_its_own_group_and_number_as_name() {
        let id = resolve(&parse_spec("4242").unwrap(), &Fake).unwrap();
        assert_eq!(
            id,
            Identity {
                uid: 4242,
                gids: vec![4242],
                user: "4242".into()
            }
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve(&parse_spec("mallory").unwrap(), &Fake).is_err());
        assert!(resolve(&parse_spec("1001:nogroup").unwrap(), &Fake).is_err());
    }

    #[test]
    fn root_resolves_on_this_machine() {
        let id = Identity::from_spec("root").unwrap();
        assert_eq!(id.uid, 0);
        assert_eq!(id.gid(), 0);
    }
}
