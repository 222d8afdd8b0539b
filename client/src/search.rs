//! Metadata search through the search service: [`Client::search`] sends a query of the
//! `arbor search` language (see `arbor_search::query`) to the service, after turning owner
//! and group names into numbers through the local passwd/group database (the service only
//! knows numbers). The service is found through the namenodes' `ClusterInfo`
//! (`search_addr`), else `ARBOR_SEARCH`, else 127.0.0.1:9300.

use std::time::Duration;

use arbor_proto::search::search_client::SearchClient;
use arbor_proto::search::{QueryReply, QueryRequest, StatusReply, StatusRequest};
use tonic::transport::Endpoint;

use crate::cli::names::Names;
use crate::client::Client;
use crate::error::{Error, Result};

/// Deadline of one search call.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Rewrites `owner=NAME` / `user=NAME` / `group=NAME` terms into numeric ones.
pub fn resolve_names(query: &str, names: &Names) -> Result<String> {
    let mut out = Vec::new();
    for token in query.split_whitespace() {
        let rewritten = match token.split_once(['=', ':']) {
            Some((field @ ("owner" | "user" | "uid"), value)) => {
                let uid = names
                    .uid_of(value)
                    .ok_or_else(|| Error::invalid(format!("{field}: unknown user {value:?}")))?;
                format!("uid={uid}")
            }
            Some((field @ ("group" | "gid"), value)) => {
                let gid = names
                    .gid_of(value)
                    .ok_or_else(|| Error::invalid(format!("{field}: unknown group {value:?}")))?;
                format!("gid={gid}")
            }
            _ => token.to_string(),
        };
        out.push(rewritten);
    }
    Ok(out.join(" "))
}

impl Client {
    /// Where the search service is: the cluster's `search_addr`, else `ARBOR_SEARCH`, else
    /// the default.
    pub async fn search_addr(&self) -> String {
        if let Ok(info) = self.cluster_info().await
            && !info.search_addr.is_empty()
        {
            return info.search_addr;
        }
        match std::env::var(arbor_search::SEARCH_ENV) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => arbor_search::DEFAULT_ADDR.to_string(),
        }
    }

    fn search_client(&self, addr: &str) -> Result<SearchClient<tonic::transport::Channel>> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Error::invalid(format!("search service address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(SEARCH_TIMEOUT)
            .connect_lazy();
        Ok(SearchClient::new(channel).max_decoding_message_size(256 << 20))
    }

    /// Runs `query` on the search service: at most `limit` hits (0: the service's default of
    /// 100) at or below `path_prefix` ("" or "/": everywhere), newest modification first,
    /// and the number of matches in all.
    pub async fn search(&self, query: &str, path_prefix: &str, limit: u32) -> Result<QueryReply> {
        let addr = self.search_addr().await;
        self.search_at(&addr, query, path_prefix, limit).await
    }

    /// [`Client::search`] on the search service at `addr`.
    pub async fn search_at(
        &self,
        addr: &str,
        query: &str,
        path_prefix: &str,
        limit: u32,
    ) -> Result<QueryReply> {
        let query = resolve_names(query, &Names::default())?;
        let mut rpc = self.search_client(addr)?;
        let req = QueryRequest {
            query,
            path_prefix: path_prefix.to_string(),
            limit,
        };
        match tokio::time::timeout(SEARCH_TIMEOUT, rpc.query(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(with_addr(Error::from(s), addr)),
            Err(_) => Err(Error::unavailable(format!(
                "search service {addr}: no answer"
            ))),
        }
    }

    /// How far the search index has caught up with each shard.
    pub async fn search_status(&self) -> Result<StatusReply> {
        let addr = self.search_addr().await;
        self.search_status_at(&addr).await
    }

    /// [`Client::search_status`] of the search service at `addr`.
    pub async fn search_status_at(&self, addr: &str) -> Result<StatusReply> {
        let mut rpc = self.search_client(addr)?;
        match tokio::time::timeout(SEARCH_TIMEOUT, rpc.status(StatusRequest {})).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(with_addr(Error::from(s), addr)),
            Err(_) => Err(Error::unavailable(format!(
                "search service {addr}: no answer"
            ))),
        }
    }
}

fn with_addr(mut e: Error, addr: &str) -> Error {
    if e.is_retryable() {
        e.message = format!("search service {addr}: {}", e.message);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::identity::{Account, Accounts};

    struct Fake;
    impl Accounts for Fake {
        fn user_by_uid(&self, _uid: u32) -> Option<Account> {
            None
        }
        fn user_by_name(&self, _name: &str) -> Option<Account> {
            None
        }
        fn group_by_name(&self, name: &str) -> Option<u32> {
            (name == "staff").then_some(50)
        }
        fn group_by_gid(&self, _gid: u32) -> Option<String> {
            None
        }
        fn groups_of(&self, _name: &str, primary: u32) -> Vec<u32> {
            vec![primary]
        }
    }

    #[test]
    fn owner_and_group_names_become_numbers() {
        let names = Names::new(Box::new(Fake));
        let q = resolve_names("name:*.csv owner=12 group=staff size>1K", &names).unwrap();
        assert_eq!(q, "name:*.csv uid=12 gid=50 size>1K");
        assert!(resolve_names("owner=no-such-user-here", &names).is_err());
    }
}
