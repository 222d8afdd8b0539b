//! Talking to the cluster: the shard list from a namenode (`ClusterInfo`), and per shard the
//! calls search needs (status, paged scans of a table, the change stream, cursors). Every
//! unary call has a deadline; a change stream is long-lived, so its channel uses HTTP/2
//! keepalives to notice a dead shard instead.

use std::time::Duration;

use arbor_proto::metastore::metastore_client::MetastoreClient;
use arbor_proto::metastore::{
    ChangeBatch, DeleteCursorRequest, Empty, Row, ScanRequest, SetCursorRequest, StatusRequest,
    StatusResponse, SubscribeRequest,
};
use arbor_proto::namenode::namenode_client::NamenodeClient;
use arbor_proto::namenode::{ClusterInfoReply, Empty as NnEmpty};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Streaming};

use crate::error::{Error, Result};

/// Deadline of one unary call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Rows per scan page.
const SCAN_PAGE: u32 = 1000;

fn channel(addr: &str) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| Error::Remote {
        addr: addr.to_string(),
        message: format!("bad address: {e}"),
    })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

async fn deadline<T>(
    addr: &str,
    fut: impl Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => Err(Error::remote(addr, &status)),
        Err(_) => Err(Error::Remote {
            addr: addr.to_string(),
            message: format!("no answer within {CALL_TIMEOUT:?}"),
        }),
    }
}

/// Asks the namenodes (first that answers) what the cluster is.
pub async fn cluster_info(namenodes: &[String]) -> Result<ClusterInfoReply> {
    let mut last = Error::Invalid("no namenode address given".into());
    for addr in namenodes {
        let mut client = NamenodeClient::new(channel(addr)?);
        match deadline(addr, client.cluster_info(NnEmpty {})).await {
            Ok(info) => return Ok(info),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One metastore shard.
#[derive(Clone, Debug)]
pub struct Shard {
    pub index: u32,
    pub addr: String,
    client: MetastoreClient<Channel>,
}

impl Shard {
    pub fn new(index: u32, addr: &str) -> Result<Shard> {
        Ok(Shard {
            index,
            addr: addr.to_string(),
            client: MetastoreClient::new(channel(addr)?).max_decoding_message_size(64 << 20),
        })
    }

    /// The shards of the cluster, in shard order.
    pub fn all(info: &ClusterInfoReply) -> Result<Vec<Shard>> {
        info.metastores
            .iter()
            .enumerate()
            .map(|(i, addr)| Shard::new(i as u32, addr))
            .collect()
    }

    pub async fn status(&self) -> Result<StatusResponse> {
        deadline(&self.addr, self.client.clone().status(StatusRequest {})).await
    }

    /// Every row of the table whose keys start with byte `table`, page by page.
    pub async fn scan_table(&self, table: u8, mut each: impl FnMut(Row)) -> Result<u64> {
        let mut start = vec![table];
        let end = vec![table + 1];
        let mut n = 0;
        loop {
            let page = deadline(
                &self.addr,
                self.client.clone().scan(ScanRequest {
                    start: start.clone(),
                    end: end.clone(),
                    limit: SCAN_PAGE,
                    keys_only: false,
                }),
            )
            .await?;
            let more = page.more;
            let Some(last) = page.rows.last().map(|r| r.key.clone()) else {
                return Ok(n);
            };
            for row in page.rows {
                n += 1;
                each(row);
            }
            if !more {
                return Ok(n);
            }
            start = last;
            start.push(0);
        }
    }

    /// The change stream from `from_seq` on. A log trimmed past `from_seq` is
    /// [`Error::Trimmed`].
    pub async fn subscribe(&self, from_seq: u64) -> Result<Streaming<ChangeBatch>> {
        let mut client = self.client.clone();
        let call = client.subscribe(SubscribeRequest {
            from_seq,
            max_batch: 0,
        });
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) if s.code() == Code::OutOfRange => Err(Error::Trimmed {
                shard: self.index,
                from: from_seq,
            }),
            Ok(Err(s)) => Err(Error::remote(&self.addr, &s)),
            Err(_) => Err(Error::Remote {
                addr: self.addr.clone(),
                message: "subscribe: no answer in time".into(),
            }),
        }
    }

    /// Stores `consumer`'s cursor: the first sequence it still needs.
    pub async fn set_cursor(&self, consumer: &str, seq: u64) -> Result<()> {
        deadline(
            &self.addr,
            self.client.clone().set_cursor(SetCursorRequest {
                consumer: consumer.to_string(),
                seq,
            }),
        )
        .await
        .map(|_| ())
    }

    /// `consumer`'s stored cursor, if it has one.
    pub async fn cursor(&self, consumer: &str) -> Result<Option<u64>> {
        let list = deadline(&self.addr, self.client.clone().list_cursors(Empty {})).await?;
        Ok(list
            .cursors
            .into_iter()
            .find(|c| c.consumer == consumer)
            .map(|c| c.seq))
    }

    pub async fn delete_cursor(&self, consumer: &str) -> Result<()> {
        deadline(
            &self.addr,
            self.client.clone().delete_cursor(DeleteCursorRequest {
                consumer: consumer.to_string(),
            }),
        )
        .await
        .map(|_| ())
    }
}

/// Whether a failed stream says the log was trimmed.
pub fn is_trimmed(status: &tonic::Status) -> bool {
    status.code() == Code::OutOfRange
}
