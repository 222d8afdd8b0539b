//! A metastore shard (filled in by its modules).
