//! Calls to a namenode with hand-built call contexts, for the scenarios that must control the
//! (client id, call id) pair themselves: exactly-once retries on another namenode, and requests
//! sent to a namenode that is about to die.

use std::sync::atomic::{AtomicU64, Ordering};

use arbor_proto::namenode::{CallContext, ErrorCode};
use rand::RngCore;

/// A caller: one client id, call ids handed out in order, the superuser's identity.
pub struct Caller {
    client_id: Vec<u8>,
    next_call: AtomicU64,
}

impl Default for Caller {
    fn default() -> Self {
        Self::new()
    }
}

impl Caller {
    /// A fresh random client id.
    pub fn new() -> Caller {
        let mut client_id = vec![0u8; 16];
        rand::rng().fill_bytes(&mut client_id);
        Caller {
            client_id,
            next_call: AtomicU64::new(1),
        }
    }

    /// The context of call `call_id` (the same value on every retry of that call).
    pub fn ctx(&self, call_id: u64) -> CallContext {
        CallContext {
            client_id: self.client_id.clone(),
            call_id,
            uid: 0,
            gids: vec![0],
            user: "root".into(),
        }
    }

    /// The context of a new call.
    pub fn fresh(&self) -> CallContext {
        self.ctx(self.next_call.fetch_add(1, Ordering::Relaxed))
    }
}

/// The Arbor error code a failed call carries.
pub fn code(status: &tonic::Status) -> ErrorCode {
    arbor_proto::error::code_of(status)
}
