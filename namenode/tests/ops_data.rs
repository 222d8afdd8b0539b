//! The data path's metadata on the in-memory store: writers' leases, block allocation and
//! placement, commits, reads, truncation, policies, the freed queue, and the leader's repair
//! pass against a scripted set of block servers.

mod ops_common;

use std::sync::Arc;
use std::time::Duration;

use arbor_namenode::data::repair;
use arbor_namenode::data::shards::ShardService;
use arbor_namenode::data::{DataConfig, addblock, commit, ec, open, read, report, servers};
use arbor_namenode::fsck;
use arbor_namenode::keys;
use arbor_namenode::memstore::MemStore;
use arbor_namenode::ops::content_summary::content_summary;
use arbor_namenode::ops::delete::delete;
use arbor_namenode::ops::mkdir::mkdir;
use arbor_namenode::ops::setattr::{SetAttr, setattr};
use arbor_namenode::ops::stat::stat;
use arbor_namenode::ops::{Namespace, NsConfig};
use arbor_namenode::perm::Caller;
use arbor_proto::namenode::delete_request::Expect;
use arbor_proto::namenode::{
    AddBlockRequest, BadShard, BlockInfo, CommitWriteRequest, ErrorCode, GetBlocksRequest,
    HeartbeatRequest, OpenWriteRequest, ReportBadShardsRequest, ShardLocation,
};
use ops_common::*;
use parking_lot::Mutex;

fn data_config() -> DataConfig {
    DataConfig {
        block_size: 1 << 20,
        cell_size: 64 << 10,
        inline_threshold: 16,
        lease_soft: Duration::from_secs(60),
        ..DataConfig::default()
    }
}

fn ns_with(data: DataConfig) -> Arc<Ns> {
    Arc::new(Namespace::new(
        Arc::new(MemStore::new(4, 64)),
        NsConfig {
            data,
            ..NsConfig::default()
        },
    ))
}

async fn register(ns: &Ns, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        servers::heartbeat(
            ns,
            &HeartbeatRequest {
                server_id: id,
                addr: format!("127.0.0.1:{}", 19550 + id),
                store_url: "file:///tmp/x".into(),
                capacity_bytes: 1 << 40,
                used_bytes: 0,
                shards: 0,
            },
        )
        .await
        .unwrap();
    }
}

fn writer(name: &str, uid: u32) -> Caller {
    Caller::user(uid, &[uid], name).with_call(format!("client-{name}").as_bytes(), 0)
}

/// Each call of a caller needs a fresh call id for exactly-once.
fn call(c: &Caller, id: u64) -> Caller {
    c.clone().with_call(&c.client_id, id)
}

fn open_req(path: &str) -> OpenWriteRequest {
    OpenWriteRequest {
        path: path.into(),
        mode: 0o644,
        create: true,
        ..Default::default()
    }
}

/// The shards of an allocated block as the writer commits them.
fn written(mut b: BlockInfo, index: u64, length: u64) -> BlockInfo {
    b.index = index;
    b.length = length;
    b
}

#[tokio::test]
async fn write_allocate_commit_read_and_free() {
    let ns = ns_with(data_config());
    register(&ns, 1..=7).await;
    mkdir(&ns, &root(), "/d", 0o777, false).await.unwrap();
    ec::set_ec_policy(&ns, &root(), "/d", "RS-4-2")
        .await
        .unwrap();
    let a = writer("alice", 1000);

    let opened = open::open_write(&ns, &call(&a, 1), &open_req("/d/f"))
        .await
        .unwrap();
    let ino = opened.status.as_ref().unwrap().ino;
    assert_eq!(opened.policy.as_ref().unwrap().name, "RS-4-2-1024k");
    assert_eq!(opened.policy.as_ref().unwrap().cell_size, 64 << 10);
    assert!(opened.inline && opened.next_block_index == 0);

    let add = |_call: u64, exclude: Vec<u64>| AddBlockRequest {
        ino,
        lease: opened.lease.clone(),
        exclude_servers: exclude,
        ..Default::default()
    };
    let b0 = addblock::add_block(&ns, &call(&a, 2), &add(2, vec![]))
        .await
        .unwrap()
        .block
        .unwrap();
    let mut ids: Vec<_> = b0.shards.iter().map(|s| s.server_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "distinct servers");
    assert!(b0.shards.iter().all(|s| !s.addr.is_empty()));
    // A retried call gets the same block back.
    let again = addblock::add_block(&ns, &call(&a, 2), &add(2, vec![]))
        .await
        .unwrap()
        .block
        .unwrap();
    assert_eq!(again.block_id, b0.block_id);
    let b1 = addblock::add_block(&ns, &call(&a, 3), &add(3, vec![1]))
        .await
        .unwrap()
        .block
        .unwrap();
    assert!(b1.shards.iter().all(|s| s.server_id != 1), "excluded");
    let b_unused = addblock::add_block(&ns, &call(&a, 4), &add(4, vec![]))
        .await
        .unwrap()
        .block
        .unwrap();
    assert_ne!(b_unused.block_id, b1.block_id);
    assert_eq!(ns.store.count_table(keys::PENDING), 3);

    // Block 1 lost a shard on the way: it commits with server 0 there.
    let mut w1 = written(b1.clone(), 1, 500);
    w1.shards[5].server_id = 0;
    let st = commit::commit_write(
        &ns,
        &call(&a, 5),
        &CommitWriteRequest {
            ino,
            lease: opened.lease.clone(),
            blocks: vec![written(b0.clone(), 0, 1 << 20), w1],
            size: (1 << 20) + 500,
            close: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(st.size, (1 << 20) + 500);
    assert_eq!(
        stat(&ns, &root(), "/d/f").await.unwrap().size,
        (1 << 20) + 500
    );
    // The never-committed block is freed at close, and the lease is gone.
    assert_eq!(ns.store.count_table(keys::PENDING), 0);
    assert_eq!(ns.store.count_table(keys::FREED), 1);
    assert_eq!(ns.store.count_table(keys::WRITE_LEASE), 0);

    let got = read::get_blocks(
        &ns,
        &root(),
        &GetBlocksRequest {
            path: "/d/f".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!got.inline && !got.more);
    let spans: Vec<_> = got
        .blocks
        .iter()
        .map(|b| (b.index, b.offset, b.length))
        .collect();
    assert_eq!(spans, vec![(0, 0, 1 << 20), (1, 1 << 20, 500)]);
    assert_eq!(got.blocks[1].shards[5].addr, "");
    assert!(
        got.blocks[0]
            .shards
            .iter()
            .all(|s| s.addr.starts_with("127.0.0.1:"))
    );
    // By inode, paged.
    let page = read::get_blocks(
        &ns,
        &root(),
        &GetBlocksRequest {
            ino,
            from_index: 1,
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page.blocks.len(), 1);
    assert_eq!(page.blocks[0].block_id, b1.block_id);

    let reply = fsck::fsck_with(&*ns.store, "/", &ns.config.data)
        .await
        .unwrap();
    assert!(reply.healthy, "{:?}", reply.problems);
    assert_eq!(reply.blocks, 2);
    assert_eq!(reply.under_strength_blocks, 1);
    assert_eq!(reply.live_block_servers, 7);

    let sum = content_summary(&ns, &root(), "/d").await.unwrap();
    assert_eq!(sum.space_consumed, (1 << 20) * 6 / 4 + 750);

    // A block not allocated to the writer is refused.
    let opened2 = open::open_write(
        &ns,
        &call(&a, 6),
        &OpenWriteRequest {
            append: true,
            ..open_req("/d/f")
        },
    )
    .await
    .unwrap();
    assert_eq!(opened2.next_block_index, 2);
    let bogus = commit::commit_write(
        &ns,
        &call(&a, 7),
        &CommitWriteRequest {
            ino,
            lease: opened2.lease.clone(),
            blocks: vec![written(b_unused.clone(), 2, 10)],
            size: (1 << 20) + 510,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code(bogus), ErrorCode::InvalidArgument);

    // Deleting the file (even while open) frees its blocks in the same transaction.
    delete(&ns, &root(), "/d/f", false, Expect::Any)
        .await
        .unwrap();
    assert_eq!(ns.store.count_table(keys::BLOCK), 0);
    assert_eq!(ns.store.count_table(keys::WRITE_LEASE), 0);
    assert_eq!(ns.store.count_table(keys::FREED), 3);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn leases_conflict_and_expired_ones_are_recovered() {
    let ns = ns_with(DataConfig {
        lease_soft: Duration::from_millis(300),
        ..data_config()
    });
    register(&ns, 1..=9).await;
    mkdir(&ns, &root(), "/t", 0o777, false).await.unwrap();
    // bob is the superuser: only the lease stands in his way.
    let (a, b) = (writer("alice", 1000), writer("bob", 0));
    let mine = open::open_write(&ns, &call(&a, 1), &open_req("/t/f"))
        .await
        .unwrap();
    let ino = mine.status.unwrap().ino;
    addblock::add_block(
        &ns,
        &call(&a, 2),
        &AddBlockRequest {
            ino,
            lease: mine.lease.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let e = open::open_write(&ns, &call(&b, 1), &open_req("/t/f"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::LeaseHeld);
    assert!(
        e.to_string()
            .contains("because this file lease is currently owned by"),
        "{e}"
    );
    let t = setattr(
        &ns,
        &root(),
        "/t/f",
        &SetAttr {
            size: Some(3),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code(t), ErrorCode::LeaseHeld);
    // Renewal keeps it alive past the soft limit.
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        commit::renew_lease(
            &ns,
            &call(&a, 10 + i),
            &arbor_proto::namenode::RenewLeaseRequest {
                inos: vec![ino],
                leases: vec![mine.lease.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let e = open::open_write(&ns, &call(&b, 2), &open_req("/t/f")).await;
    assert_eq!(code(e), ErrorCode::LeaseHeld);

    // Unrenewed, it expires: bob recovers it and alice's allocation is freed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let theirs = open::open_write(&ns, &call(&b, 3), &open_req("/t/f"))
        .await
        .unwrap();
    assert_ne!(theirs.lease, mine.lease);
    assert_eq!(ns.store.count_table(keys::PENDING), 0);
    assert_eq!(ns.store.count_table(keys::FREED), 1);
    let late = addblock::add_block(
        &ns,
        &call(&a, 20),
        &AddBlockRequest {
            ino,
            lease: mine.lease.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code(late), ErrorCode::LeaseExpired);
    let late = commit::commit_write(
        &ns,
        &call(&a, 21),
        &CommitWriteRequest {
            ino,
            lease: mine.lease.clone(),
            size: 1,
            inline_data: Some(b"x".to_vec()),
            close: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code(late), ErrorCode::LeaseExpired);
    // Exclusive create of an existing file, and a directory.
    let ex = open::open_write(
        &ns,
        &call(&b, 4),
        &OpenWriteRequest {
            exclusive: true,
            ..open_req("/t/f")
        },
    )
    .await;
    assert_eq!(code(ex), ErrorCode::AlreadyExists);
    let dir = open::open_write(&ns, &call(&b, 5), &open_req("/t")).await;
    assert_eq!(code(dir), ErrorCode::IsADirectory);
    // Write permission on the file.
    let carol = writer("carol", 1002);
    let denied = open::open_write(&ns, &call(&carol, 1), &open_req("/t/f")).await;
    assert_eq!(code(denied), ErrorCode::PermissionDenied);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn placement_needs_enough_live_servers() {
    let ns = ns_with(data_config());
    register(&ns, 1..=3).await;
    let a = writer("alice", 0);
    let opened = open::open_write(&ns, &call(&a, 1), &open_req("/f"))
        .await
        .unwrap();
    let e = addblock::add_block(
        &ns,
        &call(&a, 2),
        &AddBlockRequest {
            ino: opened.status.unwrap().ino,
            lease: opened.lease.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoSpace);
    assert!(
        e.to_string()
            .contains("only 3 block servers are live, RS-6-3-1024k needs 9"),
        "{e}"
    );
    let listed = servers::list(&ns).await.unwrap();
    assert_eq!(listed.servers.len(), 3);
    assert!(listed.servers.iter().all(|s| s.alive));
}

#[tokio::test]
async fn inline_files_truncate_and_grow_into_blocks() {
    let ns = ns_with(data_config());
    register(&ns, 1..=9).await;
    let a = writer("alice", 0);
    let opened = open::open_write(&ns, &call(&a, 1), &open_req("/small"))
        .await
        .unwrap();
    let ino = opened.status.unwrap().ino;
    commit::commit_write(
        &ns,
        &call(&a, 2),
        &CommitWriteRequest {
            ino,
            lease: opened.lease,
            inline_data: Some(b"hello world".to_vec()),
            size: 11,
            close: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let size = |n| SetAttr {
        size: Some(n),
        ..Default::default()
    };
    let blocks = |ns: Arc<Ns>| async move {
        read::get_blocks(
            &ns,
            &root(),
            &GetBlocksRequest {
                path: "/small".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    };
    setattr(&ns, &root(), "/small", &size(5)).await.unwrap();
    let r = blocks(ns.clone()).await;
    assert!(r.inline);
    assert_eq!(r.inline_data, b"hello");
    setattr(&ns, &root(), "/small", &size(8)).await.unwrap();
    assert_eq!(blocks(ns.clone()).await.inline_data, b"hello\0\0\0");
    // Past the threshold (16): the bytes become a metastore block, then holes.
    setattr(&ns, &root(), "/small", &size((1 << 20) + 100))
        .await
        .unwrap();
    let r = blocks(ns.clone()).await;
    assert!(!r.inline);
    assert_eq!(ns.store.count_table(keys::INLINE), 0);
    assert_eq!(r.blocks[0].data, b"hello\0\0\0");
    assert_eq!(
        r.blocks.iter().map(|b| b.length).sum::<u64>(),
        (1 << 20) + 100
    );
    assert!(r.blocks[1].shards.is_empty());
    fsck_ok(&ns).await;

    // A block file: shrinking frees whole blocks past the end and shortens the last.
    let opened = open::open_write(&ns, &call(&a, 3), &open_req("/big"))
        .await
        .unwrap();
    let ino = opened.status.unwrap().ino;
    let mut committed = Vec::new();
    for i in 0..3u64 {
        let b = addblock::add_block(
            &ns,
            &call(&a, 10 + i),
            &AddBlockRequest {
                ino,
                lease: opened.lease.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .block
        .unwrap();
        committed.push(written(b, i, 1 << 20));
    }
    commit::commit_write(
        &ns,
        &call(&a, 20),
        &CommitWriteRequest {
            ino,
            lease: opened.lease,
            blocks: committed,
            size: 3 << 20,
            close: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let freed_before = ns.store.count_table(keys::FREED);
    setattr(&ns, &root(), "/big", &size((1 << 20) + 7))
        .await
        .unwrap();
    assert_eq!(ns.store.count_table(keys::FREED), freed_before + 1);
    let r = read::get_blocks(
        &ns,
        &root(),
        &GetBlocksRequest {
            path: "/big".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let spans: Vec<_> = r.blocks.iter().map(|b| (b.offset, b.length)).collect();
    assert_eq!(spans, vec![(0, 1 << 20), (1 << 20, 7)]);
    assert_eq!(r.status.unwrap().size, (1 << 20) + 7);
    fsck_ok(&ns).await;
}

#[tokio::test]
async fn policies_are_inherited_and_checked() {
    let ns = ns_with(data_config());
    let bob = Caller::user(1001, &[1001], "bob");
    mkdir(&ns, &root(), "/a/b", 0o777, true).await.unwrap();
    ec::set_ec_policy(&ns, &root(), "/a", "RS-3-2-1024k")
        .await
        .unwrap();
    let got = ec::get_ec_policy(&ns, &root(), "/a/b").await.unwrap();
    assert_eq!(got.policy.unwrap().name, "RS-3-2-1024k");
    assert_eq!(got.set_on, "/a");
    let none = ec::get_ec_policy(&ns, &root(), "/").await.unwrap();
    assert_eq!(none.policy.unwrap().name, "RS-6-3-1024k");
    assert_eq!(none.set_on, "");
    // A file takes the policy at creation and keeps it.
    let opened = open::open_write(&ns, &call(&writer("w", 0), 1), &open_req("/a/b/f"))
        .await
        .unwrap();
    assert_eq!(opened.policy.unwrap().name, "RS-3-2-1024k");
    ec::set_ec_policy(&ns, &root(), "/a/b", "REPLICATION-3")
        .await
        .unwrap();
    let f = ec::get_ec_policy(&ns, &root(), "/a/b/f").await.unwrap();
    assert_eq!(f.policy.unwrap().name, "RS-3-2-1024k");
    assert_eq!(f.set_on, "/a/b/f");
    let unknown = ec::set_ec_policy(&ns, &root(), "/a", "RS-10-4").await;
    let e = unknown.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("REPLICATION-3"), "{e}");
    assert_eq!(
        code(ec::set_ec_policy(&ns, &bob, "/a", "RS-6-3").await),
        ErrorCode::NotPermitted
    );
    assert_eq!(
        code(ec::set_ec_policy(&ns, &root(), "/a/b/f", "RS-6-3").await),
        ErrorCode::NotADirectory
    );
    ec::set_ec_policy(&ns, &root(), "/a", "").await.unwrap();
    let got = ec::get_ec_policy(&ns, &root(), "/a").await.unwrap();
    assert_eq!(got.set_on, "");
    let list = ec::list_ec_policies(&ns);
    assert_eq!(list.policies.len(), 4);
    assert_eq!(list.default_policy, "RS-6-3-1024k");
}

/// One DeleteShards call: the server's address and the (block id, index) pairs.
type DeleteCall = (String, Vec<(u64, u32)>);

/// Block servers as the repair pass sees them: records every call; `rebuild` fails when the
/// block has fewer than k shards to read.
#[derive(Default)]
struct Scripted {
    deleted: Mutex<Vec<DeleteCall>>,
    rebuilt: Mutex<Vec<(u64, Vec<ShardLocation>)>>,
}

impl ShardService for Scripted {
    async fn delete_shards(&self, addr: &str, ids: &[(u64, u32)]) -> Result<u64, String> {
        self.deleted.lock().push((addr.to_string(), ids.to_vec()));
        Ok(ids.len() as u64)
    }

    async fn rebuild(&self, block: &BlockInfo, targets: &[ShardLocation]) -> Result<(), String> {
        let good = block.shards.iter().filter(|s| s.server_id != 0).count();
        if good < block.policy.as_ref().map_or(0, |p| p.data_shards as usize) {
            return Err("not enough shards".into());
        }
        self.rebuilt.lock().push((block.block_id, targets.to_vec()));
        Ok(())
    }
}

#[tokio::test]
async fn repair_rebuilds_lost_and_reported_shards_and_deletes_freed_ones() {
    let ns = ns_with(data_config());
    register(&ns, 1..=8).await;
    ec::set_ec_policy(&ns, &root(), "/", "RS-4-2")
        .await
        .unwrap();
    let a = writer("alice", 0);
    let opened = open::open_write(&ns, &call(&a, 1), &open_req("/f"))
        .await
        .unwrap();
    let ino = opened.status.unwrap().ino;
    let b = addblock::add_block(
        &ns,
        &call(&a, 2),
        &AddBlockRequest {
            ino,
            lease: opened.lease.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .block
    .unwrap();
    let mut w = written(b.clone(), 0, 4096);
    w.shards[2].server_id = 0;
    commit::commit_write(
        &ns,
        &call(&a, 3),
        &CommitWriteRequest {
            ino,
            lease: opened.lease,
            blocks: vec![w],
            size: 4096,
            close: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    report::report_bad_shards(
        &ns,
        &root(),
        &ReportBadShardsRequest {
            shards: vec![BadShard {
                block_id: b.block_id,
                index: 4,
                server_id: b.shards[4].server_id,
                reason: "corrupt".into(),
                ino,
                block_index: 0,
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let before = fsck::fsck_with(&*ns.store, "/", &ns.config.data)
        .await
        .unwrap();
    assert!(before.healthy, "{:?}", before.problems);
    assert_eq!(before.under_strength_blocks, 1);
    assert_eq!(before.corrupt_shards, 1);

    let scripted = Scripted::default();
    let stats = repair::run_once(&*ns.store, &scripted, &ns.config.data)
        .await
        .unwrap();
    assert_eq!(stats.shards_rebuilt, 2, "{stats:?}");
    let rebuilt = scripted.rebuilt.lock().clone();
    assert_eq!(rebuilt.len(), 1);
    // The lost shard moves to a server holding no shard of the block; the shard reported
    // corrupt on a live server is rewritten where it is.
    let holders: Vec<u64> = b
        .shards
        .iter()
        .filter(|s| s.index != 2)
        .map(|s| s.server_id)
        .collect();
    let mut idx: Vec<u32> = rebuilt[0].1.iter().map(|t| t.index).collect();
    idx.sort();
    assert_eq!(idx, vec![2, 4]);
    let target = |i: u32| {
        rebuilt[0]
            .1
            .iter()
            .find(|t| t.index == i)
            .unwrap()
            .server_id
    };
    assert!(!holders.contains(&target(2)));
    assert_eq!(target(4), b.shards[4].server_id);
    let after = fsck::fsck_with(&*ns.store, "/", &ns.config.data)
        .await
        .unwrap();
    assert!(after.healthy, "{:?}", after.problems);
    assert_eq!((after.under_strength_blocks, after.corrupt_shards), (0, 0));
    assert_eq!(ns.store.count_table(keys::BAD_SHARD), 0);

    // Deleting the file queues its shards; the next pass deletes them on their servers.
    delete(&ns, &root(), "/f", false, Expect::Any)
        .await
        .unwrap();
    assert_eq!(ns.store.count_table(keys::FREED), 1);
    let stats = repair::run_once(&*ns.store, &scripted, &ns.config.data)
        .await
        .unwrap();
    assert_eq!(stats.freed_blocks_done, 1);
    assert_eq!(stats.shards_deleted, 6);
    assert_eq!(ns.store.count_table(keys::FREED), 0);
    assert_eq!(scripted.deleted.lock().len(), 6);
}

#[tokio::test]
async fn missing_blocks_make_fsck_unhealthy() {
    let ns = ns_with(data_config());
    register(&ns, 1..=6).await;
    ec::set_ec_policy(&ns, &root(), "/", "RS-4-2")
        .await
        .unwrap();
    let a = writer("alice", 0);
    let opened = open::open_write(&ns, &call(&a, 1), &open_req("/lost"))
        .await
        .unwrap();
    let ino = opened.status.unwrap().ino;
    let b = addblock::add_block(
        &ns,
        &call(&a, 2),
        &AddBlockRequest {
            ino,
            lease: opened.lease.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .block
    .unwrap();
    let mut w = written(b.clone(), 0, 100);
    for i in 0..3 {
        w.shards[i].server_id = 0;
    }
    commit::commit_write(
        &ns,
        &call(&a, 3),
        &CommitWriteRequest {
            ino,
            lease: opened.lease,
            blocks: vec![w],
            size: 100,
            close: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let reply = fsck::fsck_with(&*ns.store, "/", &ns.config.data)
        .await
        .unwrap();
    assert!(!reply.healthy);
    assert_eq!(reply.missing_blocks, 1);
    assert!(
        reply
            .problems
            .iter()
            .any(|p| p.contains("/lost") && p.contains(&b.block_id.to_string())),
        "{:?}",
        reply.problems
    );
}

#[tokio::test]
async fn recursive_delete_frees_blocks_in_the_background() {
    let ns = ns_with(data_config());
    register(&ns, 1..=9).await;
    mkdir(&ns, &root(), "/r/s", 0o777, true).await.unwrap();
    let a = writer("alice", 0);
    let mut call_id = 1;
    for name in ["/r/x", "/r/s/y"] {
        let opened = open::open_write(&ns, &call(&a, call_id), &open_req(name))
            .await
            .unwrap();
        let ino = opened.status.unwrap().ino;
        let b = addblock::add_block(
            &ns,
            &call(&a, call_id + 1),
            &AddBlockRequest {
                ino,
                lease: opened.lease.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .block
        .unwrap();
        commit::commit_write(
            &ns,
            &call(&a, call_id + 2),
            &CommitWriteRequest {
                ino,
                lease: opened.lease,
                blocks: vec![written(b, 0, 1000)],
                size: 1000,
                close: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        call_id += 3;
    }
    assert_eq!(ns.store.count_table(keys::BLOCK), 2);
    delete(&ns, &root(), "/r", true, Expect::Any).await.unwrap();
    // Detached at once; the rows (and blocks) go with the background deleter.
    assert_eq!(ns.store.count_table(keys::BLOCK), 2);
    arbor_namenode::deleter::drain(&*ns.store, 100, &|| true)
        .await
        .unwrap();
    assert_eq!(ns.store.count_table(keys::BLOCK), 0);
    assert_eq!(ns.store.count_table(keys::FREED), 2);
    fsck_ok(&ns).await;
}
