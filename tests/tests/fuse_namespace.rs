//! The mount's namespace side, for real: every operation and the errno a local file system
//! gives, as root and as an unprivileged user, two mounts of one cluster, and the ways a
//! mount ends (SIGTERM, `fusermount3 -u`, `arbor mount -d` then unmount).

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use arbor_tests::mount::{Mount, errno, is_mounted, sh, sh_as};
use arbor_tests::{Config, TestCluster};

fn cluster_config() -> Config {
    Config {
        shards: 2,
        namenodes: 2,
        ..Config::default()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn renameat2(src: &Path, dst: &Path, flags: u32) -> std::io::Result<()> {
    let (s, d) = (cstr(src), cstr(dst));
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            s.as_ptr(),
            libc::AT_FDCWD,
            d.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> std::io::Result<()> {
    let (p, n) = (cstr(p), CString::new(name).unwrap());
    // SAFETY: valid C strings and a value slice that outlive the call.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn getxattr(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let (p, n) = (cstr(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length.
    let rc = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

fn listxattr(p: &Path) -> Vec<String> {
    let p = cstr(p);
    let mut buf = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length.
    let rc = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(rc >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf.truncate(rc as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn removexattr(p: &Path, name: &str) -> std::io::Result<()> {
    let (p, n) = (cstr(p), CString::new(name).unwrap());
    // SAFETY: valid C strings.
    let rc = unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_operations_give_local_errnos() {
    let cluster = TestCluster::start(cluster_config()).await;
    let m = Mount::start(&cluster, "allow_other");
    let p = |r: &str| m.at(r);

    fs::create_dir(p("d")).unwrap();
    fs::create_dir_all(p("d/e/f")).unwrap();
    fs::File::create(p("d/file")).unwrap();
    assert!(fs::metadata(p("d/file")).unwrap().is_file());
    assert_eq!(fs::metadata(p("d/file")).unwrap().len(), 0);
    assert!(fs::metadata(p("d/e")).unwrap().is_dir());
    assert_eq!(names(&p("d")), ["e", "file"]);
    // The mount's inode numbers are Arbor's: the root is 1.
    assert_eq!(fs::metadata(m.path()).unwrap().ino(), 1);

    assert_eq!(errno(fs::create_dir(p("d"))), libc::EEXIST);
    assert_eq!(errno(fs::metadata(p("nope"))), libc::ENOENT);
    assert_eq!(errno(fs::remove_dir(p("d"))), libc::ENOTEMPTY);
    assert_eq!(errno(fs::remove_dir(p("d/file"))), libc::ENOTDIR);
    assert_eq!(errno(fs::remove_file(p("d/e"))), libc::EISDIR);
    assert_eq!(errno(fs::create_dir(p("d/file/x"))), libc::ENOTDIR);
    assert_eq!(errno(fs::hard_link(p("d/file"), p("d/hl"))), libc::EPERM);
    assert_eq!(
        errno(fs::create_dir(p(&"n".repeat(256)))),
        libc::ENAMETOOLONG
    );
    assert_eq!(errno(fs::rename(p("d"), p("d/e/f/g"))), libc::EINVAL);
    assert_eq!(
        errno(
            nix::unistd::mkfifo(
                &p("d/fifo"),
                nix::sys::stat::Mode::from_bits_truncate(0o644)
            )
            .map_err(std::io::Error::from)
        ),
        libc::EPERM
    );

    // Renames: plain, replacing, no-replace, exchange (unsupported).
    fs::rename(p("d/file"), p("d/renamed")).unwrap();
    assert_eq!(errno(fs::metadata(p("d/file"))), libc::ENOENT);
    fs::File::create(p("d/other")).unwrap();
    assert_eq!(
        errno(renameat2(
            &p("d/renamed"),
            &p("d/other"),
            libc::RENAME_NOREPLACE
        )),
        libc::EEXIST
    );
    assert_eq!(
        errno(renameat2(
            &p("d/renamed"),
            &p("d/other"),
            libc::RENAME_EXCHANGE
        )),
        libc::EINVAL
    );
    renameat2(&p("d/renamed"), &p("d/fresh"), libc::RENAME_NOREPLACE).unwrap();
    let other_ino = fs::metadata(p("d/fresh")).unwrap().ino();
    fs::rename(p("d/fresh"), p("d/other")).unwrap();
    assert_eq!(fs::metadata(p("d/other")).unwrap().ino(), other_ino);
    // A directory moves with what is under it.
    fs::rename(p("d/e"), p("moved")).unwrap();
    assert!(fs::metadata(p("moved/f")).unwrap().is_dir());

    // Symlinks.
    std::os::unix::fs::symlink("../target/x", p("d/sl")).unwrap();
    assert_eq!(fs::read_link(p("d/sl")).unwrap(), Path::new("../target/x"));
    assert!(
        fs::symlink_metadata(p("d/sl"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // Attributes: chmod, chown, times.
    fs::set_permissions(p("d/other"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(p("d/other")).unwrap().mode() & 0o7777, 0o640);
    std::os::unix::fs::chown(p("d/other"), Some(1000), Some(1000)).unwrap();
    let md = fs::metadata(p("d/other")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1000));
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    fs::File::open(p("d/other"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    assert_eq!(fs::metadata(p("d/other")).unwrap().modified().unwrap(), t);

    // Extended attributes.
    setxattr(&p("d/other"), "user.color", b"blue", 0).unwrap();
    assert_eq!(getxattr(&p("d/other"), "user.color").unwrap(), b"blue");
    assert_eq!(
        errno(setxattr(
            &p("d/other"),
            "user.color",
            b"red",
            libc::XATTR_CREATE
        )),
        libc::EEXIST
    );
    assert_eq!(
        errno(setxattr(
            &p("d/other"),
            "user.size",
            b"1",
            libc::XATTR_REPLACE
        )),
        libc::ENODATA
    );
    assert_eq!(listxattr(&p("d/other")), ["user.color"]);
    removexattr(&p("d/other"), "user.color").unwrap();
    assert_eq!(errno(getxattr(&p("d/other"), "user.color")), libc::ENODATA);

    // statfs answers.
    let out = sh(m.path(), "stat -f .");
    assert_eq!(out.code, 0, "{out:?}");

    // Unlink and rmdir.
    fs::remove_file(p("d/other")).unwrap();
    fs::remove_file(p("d/sl")).unwrap();
    fs::remove_dir(p("moved/f")).unwrap();
    assert_eq!(names(&p("moved")), Vec::<String>::new());

    // An unprivileged user: the namenode sees its uid and groups.
    fs::create_dir(p("pub")).unwrap();
    fs::set_permissions(p("pub"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::File::create(p("pub/secret")).unwrap();
    fs::set_permissions(p("pub/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = sh_as(
        1000,
        1000,
        m.path(),
        "mkdir pub/mine && touch pub/mine/f && ls -n pub/mine/f",
    );
    assert_eq!(out.code, 0, "{out:?}");
    // The caller owns what it creates; the group is the parent directory's (BSD and HDFS
    // semantics, which the namenode keeps).
    assert!(out.stdout.contains(" 1000 0 "), "{out:?}");
    let md = fs::metadata(p("pub/mine/f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 0));
    for (script, msg) in [
        ("mkdir d/x", "Permission denied"),
        ("cat pub/secret", "Permission denied"),
        ("touch d/y", "Permission denied"),
        ("chmod 777 pub/secret", "Operation not permitted"),
        ("chown 1000 pub/secret", "Operation not permitted"),
        ("rm -f pub/secret && ls pub/secret", ""),
    ] {
        let out = sh_as(1000, 1000, m.path(), script);
        if msg.is_empty() {
            // The sticky-free 0777 directory lets anyone remove entries, as locally.
            assert_ne!(out.code, 0, "{script}: {out:?}");
        } else {
            assert_ne!(out.code, 0, "{script} should fail: {out:?}");
            assert!(out.stderr.contains(msg), "{script}: {out:?}");
        }
    }

    // A second mount sees a rename after its entry timeout.
    let m2 = Mount::start(&cluster, "entry_timeout=0.5,attr_timeout=0.5");
    assert!(fs::metadata(m2.at("pub/mine/f")).is_ok());
    fs::rename(p("pub/mine"), p("pub/yours")).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(errno(fs::metadata(m2.at("pub/mine/f"))), libc::ENOENT);
    assert!(fs::metadata(m2.at("pub/yours/f")).unwrap().is_file());

    // fusermount3 -u ends the second mount's process cleanly.
    let mut m2 = m2;
    let out = sh(
        Path::new("/"),
        &format!("fusermount3 -u {}", m2.path().display()),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let status = m2
        .wait_exit(Duration::from_secs(20))
        .expect("the mount process exits");
    assert!(status.success(), "{status:?}\n{}", m2.log_text());
    assert!(!is_mounted(m2.path()));

    // SIGTERM ends the first.
    let path = m.path().to_path_buf();
    let status = m.unmount();
    assert!(status.success(), "{status:?}");
    assert!(!is_mounted(&path));
}

#[tokio::test(flavor = "multi_thread")]
async fn arbor_mount_in_the_background_returns_when_ready() {
    let cluster = TestCluster::start(cluster_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let out = cluster
        .cli(&["mount", mnt.to_str().unwrap(), "-d", "-o", "ro"])
        .await;
    assert_eq!(out.code, 0, "{out}");
    assert!(is_mounted(&mnt), "{out}");
    // Read-only: changes are refused by the kernel.
    assert_eq!(errno(fs::create_dir(mnt.join("x"))), libc::EROFS);
    assert!(fs::read_dir(&mnt).is_ok());
    let done = sh(Path::new("/"), &format!("umount {}", mnt.display()));
    assert_eq!(done.code, 0, "{done:?}");
    assert!(!is_mounted(&mnt));
}
