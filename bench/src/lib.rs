//! Paddock's load generator and the blocking jute client it (and the tests) drive servers with.
//! Both speak ZooKeeper's protocol through `node::proto`, so they drive Apache ZooKeeper
//! exactly as they drive Paddock.

pub mod client;
pub mod election;
pub mod floor;
pub mod load;
pub mod plan;
pub mod plot;
pub mod procstat;
pub mod ready;
pub mod report;
mod session;
mod wire;
