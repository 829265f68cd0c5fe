//! Paddock's load generator and the blocking jute client it (and the tests) drive servers with.
//! The client speaks ZooKeeper's protocol through `node::proto`, so it drives Apache ZooKeeper
//! exactly as it drives Paddock.

pub mod client;
