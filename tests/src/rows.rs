//! Reading metastore rows directly, below the namenodes, with the namenode's own key schema:
//! for scenarios whose claim is about rows (a background deleter removed every row of a
//! subtree) or about placement (which shard holds a directory's children).

use arbor_namenode::keys;
use arbor_namenode::txn::{Key, Route};
use arbor_proto::metastore::metastore_client::MetastoreClient;
use arbor_proto::metastore::{GetRequest, Row, ScanRequest};
use arbor_proto::records::PartitionMap;
use prost::Message;
use tonic::transport::Channel;

use crate::cluster::TestCluster;

/// Raw access to every shard of a cluster.
pub struct Rows {
    shards: Vec<MetastoreClient<Channel>>,
    map: PartitionMap,
}

/// The first key after every key that starts with `prefix` (empty: the end of the key space).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

impl Rows {
    /// Connects to every shard and loads the partition map from shard 0.
    pub async fn open(cluster: &TestCluster) -> Rows {
        let shards: Vec<_> = (0..cluster.config().shards)
            .map(|i| cluster.raw_metastore(i))
            .collect();
        let key = keys::meta(keys::META_PARTMAP);
        let reply = shards[0]
            .clone()
            .get(GetRequest {
                keys: vec![key.bytes],
                ..Default::default()
            })
            .await
            .expect("read the partition map from shard 0")
            .into_inner();
        let row = reply.rows.first().expect("one row per key");
        assert_ne!(row.version, 0, "the cluster has no partition map");
        let map = PartitionMap::decode(row.value.as_slice()).expect("decode the partition map");
        Rows { shards, map }
    }

    pub fn partition_map(&self) -> &PartitionMap {
        &self.map
    }

    pub fn shard_of(&self, route: Route) -> usize {
        match route.resolve(self.map.vparts) {
            Route::Vpart(v) => self.map.shard_of[v as usize] as usize,
            Route::Shard(s) => s as usize,
            Route::Content(_) => unreachable!("resolved above"),
        }
    }

    /// The shard that holds inode `ino`'s own rows (its inode, xattrs and data).
    pub fn shard_of_ino(&self, ino: u64) -> usize {
        self.shard_of(keys::route_of(ino))
    }

    /// The shard that holds directory `dir`'s content: its children's dentries and counter.
    pub fn shard_of_content(&self, dir: u64) -> usize {
        self.shard_of(keys::content_route(dir))
    }

    /// The row at `key` (version 0: absent).
    pub async fn get(&self, key: &Key) -> Row {
        let mut client = self.shards[self.shard_of(key.route)].clone();
        let reply = client
            .get(GetRequest {
                keys: vec![key.bytes.clone()],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("get {:?}: {e}", key.bytes))
            .into_inner();
        reply.rows.into_iter().next().expect("one row per key")
    }

    /// The rows at `keys`, in order (version 0: absent), one request per shard.
    pub async fn get_many(&self, keys: &[Key]) -> Vec<Row> {
        let mut out = vec![Row::default(); keys.len()];
        for shard in 0..self.shards.len() {
            let mine: Vec<usize> = (0..keys.len())
                .filter(|&i| self.shard_of(keys[i].route) == shard)
                .collect();
            for chunk in mine.chunks(500) {
                let reply = self.shards[shard]
                    .clone()
                    .get(GetRequest {
                        keys: chunk.iter().map(|&i| keys[i].bytes.clone()).collect(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("get from shard {shard}: {e}"))
                    .into_inner();
                assert_eq!(reply.rows.len(), chunk.len(), "one row per key");
                for (&i, row) in chunk.iter().zip(reply.rows) {
                    out[i] = row;
                }
            }
        }
        out
    }

    /// Every row whose key starts with `prefix` on the shard of `route`, all pages.
    pub async fn scan_prefix(&self, route: Route, prefix: &[u8]) -> Vec<Row> {
        let mut client = self.shards[self.shard_of(route)].clone();
        let end = prefix_end(prefix);
        let mut start = prefix.to_vec();
        let mut out = Vec::new();
        loop {
            let reply = client
                .scan(ScanRequest {
                    start: start.clone(),
                    end: end.clone(),
                    limit: 1000,
                    keys_only: false,
                })
                .await
                .unwrap_or_else(|e| panic!("scan {prefix:?}: {e}"))
                .into_inner();
            let more = reply.more;
            let last = reply.rows.last().map(|r| r.key.clone());
            out.extend(reply.rows);
            match (more, last) {
                (true, Some(mut key)) => {
                    key.push(0);
                    start = key;
                }
                _ => return out,
            }
        }
    }

    /// Every row whose key starts with `prefix`, on every shard.
    pub async fn scan_all_shards(&self, prefix: &[u8]) -> Vec<Row> {
        let mut out = Vec::new();
        for shard in 0..self.shards.len() {
            out.extend(self.scan_prefix(Route::Shard(shard as u32), prefix).await);
        }
        out
    }
}

/// Creates `count` directories under `parent` (named `{prefix}0`, `{prefix}1`, …) whose
/// children live on `count` different shards, so that moving an entry between any two of them
/// is a cross-shard (two-phase) transaction.
pub async fn dirs_on_distinct_shards(
    client: &arbor_client::Client,
    rows: &Rows,
    parent: &str,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    place_dirs(client, rows, parent, prefix, count, None).await
}

/// Like [`dirs_on_distinct_shards`], with directory `i`'s children on shard `shards[i]`.
pub async fn dirs_on_shards(
    client: &arbor_client::Client,
    rows: &Rows,
    parent: &str,
    prefix: &str,
    shards: &[usize],
) -> Vec<String> {
    place_dirs(client, rows, parent, prefix, shards.len(), Some(shards)).await
}

/// A directory's children go to its content partition, a hash of its id: this makes candidates until the wanted shards
/// are covered, renames the chosen ones into place and removes the spare ones.
async fn place_dirs(
    client: &arbor_client::Client,
    rows: &Rows,
    parent: &str,
    prefix: &str,
    count: usize,
    wanted: Option<&[usize]>,
) -> Vec<String> {
    assert!(
        count <= rows.shards.len(),
        "{count} directories on distinct shards of {}",
        rows.shards.len()
    );
    let mut chosen: Vec<Option<(String, usize)>> = vec![None; count];
    let mut spare = Vec::new();
    for attempt in 0..512 {
        let candidate = crate::namespace::join(parent, &format!("{prefix}-candidate{attempt}"));
        let status = crate::namespace::ok(
            client.mkdir(&candidate, 0o755, false).await,
            &format!("mkdir {candidate}"),
        );
        let shard = rows.shard_of_content(status.ino);
        let taken = chosen.iter().flatten().any(|(_, s)| *s == shard);
        let slot = match wanted {
            Some(wanted) => (0..count).find(|&i| wanted[i] == shard && chosen[i].is_none()),
            None if !taken => (0..count).find(|&i| chosen[i].is_none()),
            None => None,
        };
        match slot {
            Some(i) => chosen[i] = Some((candidate, shard)),
            None => spare.push(candidate),
        }
        if chosen.iter().all(Option::is_some) {
            break;
        }
    }
    assert!(
        chosen.iter().all(Option::is_some),
        "could not place directories on shards {wanted:?}"
    );
    for path in spare {
        crate::namespace::ok(client.delete(&path, false).await, &format!("rmdir {path}"));
    }
    let mut out = Vec::new();
    for (i, (candidate, _)) in chosen.into_iter().flatten().enumerate() {
        let name = crate::namespace::join(parent, &format!("{prefix}{i}"));
        crate::namespace::ok(
            client.rename(&candidate, &name).await,
            &format!("rename {candidate} {name}"),
        );
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix_range() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[0xff, 0xff]), Vec::<u8>::new());
    }
}
