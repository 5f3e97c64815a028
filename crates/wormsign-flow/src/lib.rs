//! Bidirectional flows with Zeek's `conn.log` semantics.
//!
//! A [`FlowTable`] turns a stream of decoded packets ([`wormsign_decode::PacketSummary`])
//! into finished [`FlowRecord`]s: per-direction packets, IP and payload bytes, TCP flags,
//! Zeek's [`ConnState`] and [`History`], ended by idle and active timeouts, TCP close,
//! eviction when the table is full, or the end of input. [`FlowKey`] is direction-free;
//! the originator is the sender of the first packet, except that a first-seen SYN-ACK
//! flips direction, as in Zeek.
//!
//! Design decision: one table per shard and no locks. [`shard_of`] hashes only the two
//! addresses (symmetrically) and the protocol, so both directions of a flow and every
//! fragment of a datagram reach the same table; results then depend only on the order of
//! packets within a shard, which the pipeline keeps equal to capture order. Timeouts are
//! evaluated on capture time, never wall-clock time, so a run is reproducible.
//!
//! ```
//! use std::net::IpAddr;
//! use wormsign_decode::PacketSummary;
//! use wormsign_flow::{ConnState, FlowConfig, FlowTable};
//!
//! let syn = PacketSummary {
//!     src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), proto: 6,
//!     src_port: 40000, dst_port: 445, has_ports: true, ip_len: 40, payload_len: 0,
//!     tcp_flags: 0x02, tcp_seq: 1, tcp_ack: 0, tcp_window: 1024, vlan: None,
//!     inner_vlan: None, fragment: None, truncated: false, payload_offset: 54,
//!     payload_captured: 0, tunnel: None,
//! };
//! let mut table = FlowTable::new(FlowConfig::default());
//! let mut done = Vec::new();
//! table.observe(1_000_000_000, 0, &syn, &mut done);
//! done.extend(table.flush());
//! assert_eq!(done[0].conn_state, ConnState::S0);
//! assert_eq!(done[0].history.as_str(), "S");
//! assert_eq!(done[0].orig_addr, "10.0.0.1".parse::<IpAddr>().unwrap());
//! ```
#![deny(missing_docs)]

mod community_id;
mod fragments;
mod key;
mod state;
mod store;
mod table;

pub use community_id::{community_id, CommunityId};
pub use key::{shard_of, FlowKey};
pub use state::{tcp_flags, ConnState, History};
pub use table::{
    DirCounters, EndReason, FlowConfig, FlowRecord, FlowSource, FlowStats, FlowTable, LogKind,
    NetflowOrigin, SflowOrigin, TimedPacket,
};
