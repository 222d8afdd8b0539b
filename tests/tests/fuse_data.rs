//! The mount's data side, for real: source trees copied in and out with `cp -a` and `tar`,
//! `git` inside the mount, large files with `dd` and `sha256sum`, close-to-open between two
//! mounts, concurrent readers, a block server dying mid-read, and unmount with open files.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use arbor_tests::mount::{Mount, sh};
use arbor_tests::{Config, TestCluster};

/// The repository (for real source trees to copy).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ok(cwd: &Path, script: &str) -> String {
    let out = sh(cwd, script);
    assert_eq!(out.code, 0, "{script}: {out:?}");
    out.stdout
}

/// Every entry under `dir`: relative path, type, mode, size and symlink target, sorted.
fn listing(dir: &Path) -> String {
    ok(
        dir,
        "find . -printf '%P %y %m %s %l\\n' | grep -v '^ ' | sort",
    )
}

fn sha256(path: &Path) -> String {
    let out = ok(Path::new("/"), &format!("sha256sum {}", path.display()));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A local tree with real sources, symlinks, odd modes, an empty file and a multi-block file.
fn make_source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    let r = repo();
    ok(
        &src,
        &format!(
            "cp -a {}/proto proto && mkdir -p namenode && cp -a {}/namenode/src namenode/src \
             && ln -s proto/proto link-to-protos && ln -s ../nowhere dangling \
             && printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod 0750 run.sh \
             && echo secret > private && chmod 0600 private && touch empty \
             && mkdir -m 0700 closed && head -c 3500000 /dev/urandom > closed/blob",
            r.display(),
            r.display()
        ),
    );
    src
}

#[tokio::test(flavor = "multi_thread")]
async fn trees_round_trip_and_git_works_inside() {
    let cluster = TestCluster::start(Config::data(6)).await;
    let m = Mount::start(&cluster, "");
    let local = tempfile::tempdir().unwrap();
    let src = make_source(local.path());
    let mnt = m.path();

    ok(mnt, &format!("cp -a {} tree", src.display()));
    ok(
        mnt,
        &format!("diff -r --no-dereference {} tree", src.display()),
    );
    assert_eq!(listing(&src), listing(&mnt.join("tree")));

    let out = local.path().join("out");
    ok(mnt, &format!("cp -a tree {}", out.display()));
    ok(
        mnt,
        &format!(
            "diff -r --no-dereference {} {}",
            src.display(),
            out.display()
        ),
    );
    assert_eq!(listing(&src), listing(&out));

    ok(
        mnt,
        "tar -cf tree.tar tree && mkdir untar && tar -C untar -xf tree.tar",
    );
    ok(
        mnt,
        &format!("diff -r --no-dereference {} untar/tree", src.display()),
    );
    assert_eq!(listing(&src), listing(&mnt.join("untar/tree")));

    if sh(mnt, "command -v git").code != 0 {
        eprintln!("git is not installed: skipping the git part");
    } else {
        ok(
            mnt,
            &format!(
                "mkdir repo && cd repo && git init -q && cp -a {}/. . && git add -A \
                 && git -c user.name=Arbor -c user.email=arbor@example.com commit -qm first \
                 && echo more >> run.sh && git commit -qam second",
                src.display()
            ),
        );
        let log = ok(&mnt.join("repo"), "git log --oneline | wc -l");
        assert_eq!(log.trim(), "2");
        let status = ok(&mnt.join("repo"), "git status --porcelain");
        assert_eq!(status.trim(), "", "a clean work tree");
        ok(&mnt.join("repo"), "git fsck --no-progress");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_files_between_two_mounts() {
    let cluster = TestCluster::start(Config::data(6)).await;
    let m1 = Mount::start(&cluster, "");
    let m2 = Mount::start(&cluster, "attr_timeout=0.5,entry_timeout=0.5");
    let local = tempfile::tempdir().unwrap();
    let big = local.path().join("big");
    ok(
        local.path(),
        &format!(
            "dd if=/dev/urandom of={} bs=1M count=9 status=none",
            big.display()
        ),
    );
    let want = sha256(&big);

    // Written and closed in one mount, read whole in the other.
    ok(
        m1.path(),
        &format!("dd if={} of=big bs=1M status=none", big.display()),
    );
    assert_eq!(sha256(&m1.at("big")), want);
    assert_eq!(sha256(&m2.at("big")), want);
    assert_eq!(fs::metadata(m2.at("big")).unwrap().len(), 9 << 20);

    // Rewritten (longer) in m2 after m1 cached it: m1's next open sees all of it.
    ok(
        m2.path(),
        &format!(
            "cat {} {} > big.new && mv big.new big",
            big.display(),
            big.display()
        ),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let twice = ok(
        Path::new("/"),
        &format!("cat {} {} | sha256sum", big.display(), big.display()),
    );
    assert_eq!(
        sha256(&m1.at("big")),
        twice.split_whitespace().next().unwrap()
    );

    // Concurrent readers through both mounts.
    ok(
        m1.path(),
        &format!("dd if={} of=big bs=1M status=none", big.display()),
    );
    let paths: Vec<PathBuf> = (0..4)
        .map(|i| {
            if i % 2 == 0 {
                m1.at("big")
            } else {
                m2.at("big")
            }
        })
        .collect();
    let sums: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = paths.iter().map(|p| s.spawn(move || sha256(p))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(sums.iter().all(|s| *s == want), "{sums:?}");

    // Writes at offsets (rewrite inside, extend past the end) and truncate.
    let path = m1.at("patched");
    let mut f = fs::File::create(&path).unwrap();
    f.write_all(&vec![1u8; 2_500_000]).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"hello", 1_000_000).unwrap();
    f.write_all_at(b"tail", 3_000_000).unwrap();
    drop(f);
    let mut data = Vec::new();
    fs::File::open(m2.at("patched"))
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(data.len(), 3_000_004);
    assert_eq!(&data[1_000_000..1_000_005], b"hello");
    assert!(data[2_500_000..3_000_000].iter().all(|b| *b == 0));
    assert_eq!(&data[3_000_000..], b"tail");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(10)
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), vec![1u8; 10]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_a_dead_block_server() {
    let cluster = TestCluster::start(Config::data(6)).await;
    let m = Mount::start(&cluster, "");
    let local = tempfile::tempdir().unwrap();
    let big = local.path().join("big");
    ok(
        local.path(),
        &format!(
            "dd if=/dev/urandom of={} bs=1M count=6 status=none",
            big.display()
        ),
    );
    let want = sha256(&big);
    ok(m.path(), &format!("cp {} big", big.display()));
    // Start reading, kill a block server part way, finish reading.
    let mut f = fs::File::open(m.at("big")).unwrap();
    let mut head = vec![0u8; 1 << 20];
    f.read_exact(&mut head).unwrap();
    cluster.kill_blockserver(0);
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).unwrap();
    head.extend_from_slice(&rest);
    assert_eq!(head, fs::read(&big).unwrap());
    // A fresh open reads degraded too.
    assert_eq!(sha256(&m.at("big")), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn unmount_with_open_files_keeps_what_was_written() {
    let cluster = TestCluster::start(Config::data(6)).await;
    let m = Mount::start(&cluster, "");
    let mut small = fs::File::create(m.at("small")).unwrap();
    small.write_all(b"kept across the unmount").unwrap();
    let mut large = fs::File::create(m.at("large")).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        large.write_all(&chunk).unwrap();
    }
    // Unmount while both are open (the process closes the writers, then detaches).
    let status = m.unmount();
    assert!(status.success(), "{status:?}");
    drop(small);
    drop(large);

    let m = Mount::start(&cluster, "");
    assert_eq!(fs::read(m.at("small")).unwrap(), b"kept across the unmount");
    let data = fs::read(m.at("large")).unwrap();
    assert_eq!(data.len(), 3 << 20);
    assert!(data.chunks(1 << 20).all(|c| c == chunk.as_slice()));
}
