//! Arbor client library.
