//! Mount options: what `-o` says, parsed once into [`MountOptions`], and the fuser
//! configuration derived from it. Invariant: every option is either understood or rejected
//! (a typo never silently mounts with defaults).

use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};

use crate::error::MountError;

/// Attribute and entry timeout while the mount follows the change streams: changes made
/// elsewhere reach the kernel as invalidations, so the timeout only bounds what a lost stream
/// could leave stale.
pub const WATCHED_TIMEOUT: Duration = Duration::from_secs(30);
/// Attribute and entry timeout without the change streams (`nowatch`, or no stream at mount
/// time): a change made elsewhere shows within it.
pub const UNWATCHED_TIMEOUT: Duration = Duration::from_secs(1);

/// How a mount behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct MountOptions {
    /// Refuse every change (the kernel answers `EROFS`).
    pub read_only: bool,
    /// Let other users than the one mounting use the mount.
    pub allow_other: bool,
    /// How long the kernel may cache attributes.
    pub attr_timeout: Duration,
    /// How long the kernel may cache name lookups (also negative ones).
    pub entry_timeout: Duration,
    /// Follow the shards' change streams and invalidate what changed elsewhere (`nowatch`
    /// turns it off; the timeouts then default to [`UNWATCHED_TIMEOUT`]).
    pub watch: bool,
    /// The timeouts were given (`attr_timeout=`, `entry_timeout=`), so they stay as given.
    timeouts_given: (bool, bool),
    /// The kernel checks mode bits against the caller before asking us (the namenode checks
    /// again with the caller's identity). Off: only the namenode checks, and `access(2)` is
    /// answered here from the attributes.
    pub default_permissions: bool,
    /// Threads reading requests from the kernel.
    pub threads: usize,
    /// The name shown in `mount` / `df`.
    pub fsname: String,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions {
            read_only: false,
            allow_other: false,
            attr_timeout: WATCHED_TIMEOUT,
            entry_timeout: WATCHED_TIMEOUT,
            watch: true,
            timeouts_given: (false, false),
            default_permissions: true,
            threads: 4,
            fsname: "arbor".to_string(),
        }
    }
}

impl MountOptions {
    /// Applies one `-o` value (comma-separated options) on top of `self`.
    pub fn apply(&mut self, list: &str) -> Result<(), MountError> {
        for opt in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            match (key, value) {
                ("ro", None) => self.read_only = true,
                ("rw", None) => self.read_only = false,
                ("allow_other", None) => self.allow_other = true,
                ("default_permissions", None) => self.default_permissions = true,
                ("no_default_permissions" | "nodefault_permissions", None) => {
                    self.default_permissions = false
                }
                ("attr_timeout", Some(v)) => {
                    self.attr_timeout = seconds(key, v)?;
                    self.timeouts_given.0 = true;
                }
                ("entry_timeout", Some(v)) => {
                    self.entry_timeout = seconds(key, v)?;
                    self.timeouts_given.1 = true;
                }
                ("watch", None) => self.set_watch(true),
                ("nowatch", None) => self.set_watch(false),
                ("threads", Some(v)) => {
                    self.threads = v
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| MountError::Option(format!("threads={v}")))?
                }
                ("fsname", Some(v)) if !v.is_empty() => self.fsname = v.to_string(),
                _ => return Err(MountError::Option(opt.to_string())),
            }
        }
        Ok(())
    }

    /// Turns following the change streams on or off; timeouts not given follow.
    pub fn set_watch(&mut self, on: bool) {
        self.watch = on;
        let default = if on {
            WATCHED_TIMEOUT
        } else {
            UNWATCHED_TIMEOUT
        };
        if !self.timeouts_given.0 {
            self.attr_timeout = default;
        }
        if !self.timeouts_given.1 {
            self.entry_timeout = default;
        }
    }

    /// Parses several `-o` values, later ones overriding earlier ones.
    pub fn parse<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<Self, MountError> {
        let mut opts = MountOptions::default();
        for list in lists {
            opts.apply(list)?;
        }
        Ok(opts)
    }

    /// The fuser session configuration.
    pub fn fuser_config(&self) -> Config {
        let mut mount_options = vec![
            MountOption::FSName(self.fsname.clone()),
            MountOption::Subtype("arbor".to_string()),
            MountOption::NoDev,
            MountOption::NoSuid,
            if self.read_only {
                MountOption::RO
            } else {
                MountOption::RW
            },
        ];
        if self.default_permissions {
            mount_options.push(MountOption::DefaultPermissions);
        }
        let mut config = Config::default();
        config.mount_options = mount_options;
        config.acl = if self.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        config.n_threads = Some(self.threads);
        config
    }
}

fn seconds(key: &str, v: &str) -> Result<Duration, MountError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| MountError::Option(format!("{key}={v}: expected seconds")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_watch_changes_cache_for_long_and_check_permissions() {
        let o = MountOptions::parse([]).unwrap();
        assert_eq!(o.attr_timeout, WATCHED_TIMEOUT);
        assert_eq!(o.entry_timeout, WATCHED_TIMEOUT);
        assert!(o.watch && o.default_permissions && !o.read_only && !o.allow_other);
        let o = MountOptions::parse(["nowatch"]).unwrap();
        assert!(!o.watch);
        assert_eq!(o.attr_timeout, UNWATCHED_TIMEOUT);
        assert_eq!(o.entry_timeout, UNWATCHED_TIMEOUT);
        let o = MountOptions::parse(["attr_timeout=5", "nowatch"]).unwrap();
        assert_eq!(
            o.attr_timeout,
            Duration::from_secs(5),
            "a given timeout stays"
        );
        assert_eq!(o.entry_timeout, UNWATCHED_TIMEOUT);
    }

    #[test]
    fn parses_lists_and_later_values_win() {
        let o =
            MountOptions::parse(["ro,allow_other,attr_timeout=0.5", "entry_timeout=3,rw"]).unwrap();
        assert!(!o.read_only);
        assert!(o.allow_other);
        assert_eq!(o.attr_timeout, Duration::from_millis(500));
        assert_eq!(o.entry_timeout, Duration::from_secs(3));
        let cfg = MountOptions::parse(["ro,allow_other"])
            .unwrap()
            .fuser_config();
        assert!(cfg.mount_options.contains(&MountOption::RO));
        assert_eq!(cfg.acl, SessionACL::All);
    }

    #[test]
    fn rejects_unknown_or_malformed_options() {
        for bad in [
            "rox",
            "attr_timeout=-1",
            "attr_timeout=abc",
            "entry_timeout",
            "threads=0",
            "nowatch=1",
        ] {
            assert!(MountOptions::parse([bad]).is_err(), "{bad}");
        }
    }
}
