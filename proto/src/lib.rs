//! Arbor's wire types: the metastore shard API, the namenode API, the records the namenodes
//! keep in the metastore, the block server API and the search API. Everything here is
//! generated from `proto/*.proto`, plus what every side shares: how an Arbor error code rides
//! on a gRPC status (`error`), how servers are built (`serve`), and the metrics every process
//! exports (`metrics`).

pub mod metastore {
    tonic::include_proto!("arbor.metastore");
}

pub mod records {
    tonic::include_proto!("arbor.records");
}

pub mod namenode {
    tonic::include_proto!("arbor.namenode");
}

pub mod blockserver {
    tonic::include_proto!("arbor.blockserver");
}

pub mod search {
    tonic::include_proto!("arbor.search");
}

pub mod error;
pub mod metrics;
pub mod serve;
