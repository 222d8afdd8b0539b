//! Arbor's wire types: the metastore shard API, the namenode API, and the records the
//! namenodes keep in the metastore. Everything here is generated from `proto/*.proto`, plus the
//! one convention every side shares: how an Arbor error code rides on a gRPC status.

pub mod metastore {
    tonic::include_proto!("arbor.metastore");
}

pub mod records {
    tonic::include_proto!("arbor.records");
}

pub mod namenode {
    tonic::include_proto!("arbor.namenode");
}

pub mod error;
