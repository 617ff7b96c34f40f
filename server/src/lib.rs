//! Synod's server: an etcd-v3-compatible key-value store on openraft and sled.

pub mod api;
pub mod config;
pub mod error;
pub mod mvcc;
pub mod raft;
pub mod warm;
