//! Shared helpers for the namespace operation tests: a namespace over a fresh in-memory store
//! (4 shards, 64 virtual partitions), callers, and assertions on error codes and fsck.
#![allow(dead_code)]

use std::sync::Arc;

use arbor_namenode::error::NnError;
use arbor_namenode::fsck;
use arbor_namenode::memstore::MemStore;
use arbor_namenode::ops::{Namespace, NsConfig};
use arbor_namenode::perm::Caller;
use arbor_proto::namenode::{ErrorCode, FsckReply};

pub type Ns = Namespace<MemStore>;

pub fn ns() -> Arc<Ns> {
    ns_on(MemStore::new(4, 64))
}

pub fn ns_on(store: MemStore) -> Arc<Ns> {
    Arc::new(Namespace::new(Arc::new(store), NsConfig::default()))
}

/// A second namenode over the same store (its own cache).
pub fn peer(ns: &Ns) -> Arc<Ns> {
    Arc::new(Namespace::new(ns.store.clone(), NsConfig::default()))
}

pub fn root() -> Caller {
    Caller::root()
}

pub fn alice() -> Caller {
    Caller::user(1000, &[1000, 500], "alice")
}

pub fn bob() -> Caller {
    Caller::user(1001, &[1001, 500], "bob")
}

pub fn carol() -> Caller {
    Caller::user(1002, &[1002], "carol")
}

#[track_caller]
pub fn code<T: std::fmt::Debug>(r: Result<T, NnError>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

pub async fn fsck_ok(ns: &Ns) -> FsckReply {
    let reply = fsck::fsck(&*ns.store, "/").await.expect("fsck runs");
    assert!(reply.healthy, "fsck problems: {:#?}", reply.problems);
    reply
}
