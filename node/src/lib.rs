//! The Paddock server: the jute codec, sessions, watches and the request pipeline on a
//! thread-per-core runtime.

pub mod auth;
pub mod config;
pub mod election;
pub mod ensemble;
pub mod fourlw;
pub mod http;
pub mod outbox;
pub mod peer;
pub mod persist;
pub mod prep;
pub mod proto;
pub mod quorum;
pub mod runtime;
pub mod server;
pub mod sessions;
pub mod tree_core;
pub mod watches;
pub mod zab;
