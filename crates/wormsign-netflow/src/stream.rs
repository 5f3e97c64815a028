//! Exporter streams: one per exporter address and source id / observation domain
//! (and source port, with `scope_by_source_port`), holding its templates, sampling
//! intervals and export sequence number; and the loss and restart accounting on that
//! sequence number.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::template::Template;
use crate::{NetflowDecoder, MAX_SEQUENCE_GAP};

/// Identifies one exporter stream: templates, sequence numbers and sampling
/// live here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StreamKey {
    pub(crate) addr: IpAddr,
    /// UDP source port with `scope_by_source_port`, else 0.
    pub(crate) port: u16,
    pub(crate) version: u16,
    pub(crate) domain: u32,
}

#[derive(Default)]
pub(crate) struct Stream {
    pub(crate) templates: HashMap<u16, Arc<Template>>,
    /// Expected next sequence number.
    pub(crate) next_seq: Option<u32>,
    /// UDP source port of the last datagram.
    pub(crate) last_port: Option<u16>,
    /// Last sampling interval announced by options data.
    pub(crate) sampling: Option<u32>,
    /// Sampling interval per sampler / selector id.
    pub(crate) samplers: HashMap<u64, u32>,
    /// `systemInitTimeMilliseconds` from options data.
    pub(crate) sys_init_ms: Option<u64>,
}

impl NetflowDecoder {
    /// Looks up or creates a stream; `None` when `max_streams` is reached.
    pub(crate) fn stream(&mut self, key: StreamKey) -> Option<&mut Stream> {
        if !self.streams.contains_key(&key) && self.streams.len() >= self.config.max_streams {
            self.stats.streams_rejected += 1;
            return None;
        }
        Some(self.streams.entry(key).or_default())
    }

    pub(crate) fn key(&self, exporter: SocketAddr, version: u16, domain: u32) -> StreamKey {
        StreamKey {
            addr: exporter.ip(),
            port: if self.config.scope_by_source_port {
                exporter.port()
            } else {
                0
            },
            version,
            domain,
        }
    }

    /// Compares `seq` with the stream's expected value and stores `next`. A new
    /// source port (exporter restart) resynchronises instead of counting loss.
    pub(crate) fn check_sequence(
        &mut self,
        key: StreamKey,
        port: u16,
        seq: u32,
        next: Option<u32>,
    ) {
        let Some(st) = self.streams.get_mut(&key) else {
            return;
        };
        if st.last_port.is_some_and(|p| p != port) {
            st.next_seq = None;
            self.stats.sequence_resets += 1;
        }
        st.last_port = Some(port);
        if let Some(expected) = st.next_seq {
            let gap = seq.wrapping_sub(expected);
            if gap != 0 {
                if gap <= MAX_SEQUENCE_GAP {
                    self.stats.sequence_lost += u64::from(gap);
                } else {
                    self.stats.sequence_resets += 1;
                }
            }
        }
        st.next_seq = next;
    }
}
