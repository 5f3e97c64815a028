//! NetFlow v9 and IPFIX: the datagram's sets, template sets (announcements,
//! IPFIX withdrawals, options templates) compiled into templates, data sets decoded
//! with their template (or buffered until it comes), record by record.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::pending::Pending;
use crate::record::{build, Ctx};
use crate::stream::StreamKey;
use crate::template::{compile, walk, FieldSpec, Fk, Template};
use crate::wire::{be16, be32};
use crate::{NetflowDecoder, NetflowRecord};

impl NetflowDecoder {
    pub(crate) fn decode_v9(
        &mut self,
        exporter: SocketAddr,
        ts_ns: i64,
        p: &[u8],
        out: &mut Vec<NetflowRecord>,
    ) {
        const HDR: usize = 20;
        if p.len() < HDR {
            self.stats.malformed += 1;
            return;
        }
        self.stats.packets += 1;
        let uptime = be32(p, 4);
        let secs = be32(p, 8);
        let seq = be32(p, 12);
        let domain = be32(p, 16);
        let key = self.key(exporter, 9, domain);
        if self.stream(key).is_none() {
            return;
        }
        self.check_sequence(key, exporter.port(), seq, Some(seq.wrapping_add(1)));
        let ctx = Ctx {
            export_ns: i64::from(secs) * 1_000_000_000,
            uptime_ms: Some(uptime),
            ts_ns,
        };
        self.walk_sets(key, ctx, &p[HDR..], out);
    }

    pub(crate) fn decode_ipfix(
        &mut self,
        exporter: SocketAddr,
        ts_ns: i64,
        p: &[u8],
        out: &mut Vec<NetflowRecord>,
    ) {
        const HDR: usize = 16;
        if p.len() < HDR {
            self.stats.malformed += 1;
            return;
        }
        let length = usize::from(be16(p, 2));
        if length < HDR {
            self.stats.malformed += 1;
            return;
        }
        self.stats.packets += 1;
        let p = if length > p.len() {
            self.stats.malformed += 1;
            p
        } else {
            &p[..length]
        };
        let export = be32(p, 4);
        let seq = be32(p, 8);
        let domain = be32(p, 12);
        let key = self.key(exporter, 10, domain);
        if self.stream(key).is_none() {
            return;
        }
        self.check_sequence(key, exporter.port(), seq, None);
        let ctx = Ctx {
            export_ns: i64::from(export) * 1_000_000_000,
            uptime_ms: None,
            ts_ns,
        };
        // The IPFIX sequence number counts data records (flows and options);
        // the next expected value is only known when every set was decodable.
        if let Some(n) = self.walk_sets(key, ctx, &p[HDR..], out) {
            if let Some(st) = self.streams.get_mut(&key) {
                st.next_seq = Some(seq.wrapping_add(n as u32));
            }
        }
    }

    /// Walks the sets of a v9 / IPFIX message. Returns the number of data
    /// records decoded, or `None` if some data set could not be decoded now
    /// (no template) or the message was malformed.
    pub(crate) fn walk_sets(
        &mut self,
        key: StreamKey,
        ctx: Ctx,
        mut body: &[u8],
        out: &mut Vec<NetflowRecord>,
    ) -> Option<usize> {
        let ipfix = key.version == 10;
        let mut complete = true;
        let mut records = 0usize;
        while body.len() >= 4 {
            let id = be16(body, 0);
            let len = usize::from(be16(body, 2));
            if len < 4 || len > body.len() {
                self.stats.malformed += 1;
                return None;
            }
            let set = &body[4..len];
            body = &body[len..];
            match (ipfix, id) {
                (false, 0) | (true, 2) => self.template_set(key, set, false, out),
                (false, 1) | (true, 3) => self.template_set(key, set, true, out),
                (_, 256..) => match self.data_set(key, id, set, ctx, out) {
                    Some(n) => records += n,
                    None => complete = false,
                },
                _ => self.stats.sets_skipped += 1,
            }
        }
        complete.then_some(records)
    }

    /// Parses a template set (or options template set) and stores its templates.
    pub(crate) fn template_set(
        &mut self,
        key: StreamKey,
        mut set: &[u8],
        options: bool,
        out: &mut Vec<NetflowRecord>,
    ) {
        let ipfix = key.version == 10;
        loop {
            // v9 options template header is 6 bytes; others 4. Shorter leftovers are padding.
            let hdr = if options && !ipfix { 6 } else { 4 };
            if set.len() < hdr {
                return;
            }
            let tid = be16(set, 0);
            if tid < 256 {
                // A template id below 256 is invalid: withdrawal of all
                // templates (IPFIX, field count 0) or padding.
                if ipfix && be16(set, 2) == 0 && (tid == 2 || tid == 3) {
                    self.stats.template_withdrawals += 1;
                    self.withdraw(key, None, tid == 3);
                    set = &set[4..];
                    continue;
                }
                return;
            }
            let mut specs = Vec::new();
            let consumed;
            if ipfix {
                let count = usize::from(be16(set, 2));
                if count == 0 {
                    self.stats.template_withdrawals += 1;
                    self.withdraw(key, Some(tid), options);
                    set = &set[4..];
                    continue;
                }
                let (scope, mut pos) = if options {
                    match set.get(4..6) {
                        Some(s) => (usize::from(u16::from_be_bytes([s[0], s[1]])), 6),
                        None => {
                            self.stats.malformed += 1;
                            return;
                        }
                    }
                } else {
                    (0, 4)
                };
                if options && (scope == 0 || scope > count) {
                    self.stats.malformed += 1;
                    return;
                }
                for _ in 0..count {
                    let Some(f) = set.get(pos..pos + 4) else {
                        self.stats.malformed += 1;
                        return;
                    };
                    let id = be16(f, 0);
                    let enterprise = id & 0x8000 != 0;
                    pos += if enterprise { 8 } else { 4 };
                    if pos > set.len() {
                        self.stats.malformed += 1;
                        return;
                    }
                    specs.push(FieldSpec {
                        id: id & 0x7fff,
                        len: be16(f, 2),
                        enterprise,
                        v9_scope: false,
                    });
                }
                consumed = pos;
            } else {
                let (scope_bytes, field_bytes) = if options {
                    (usize::from(be16(set, 2)), usize::from(be16(set, 4)))
                } else {
                    (0, usize::from(be16(set, 2)) * 4)
                };
                let total = hdr + scope_bytes + field_bytes;
                if scope_bytes % 4 != 0 || field_bytes % 4 != 0 || total > set.len() {
                    self.stats.malformed += 1;
                    return;
                }
                if scope_bytes + field_bytes == 0 {
                    self.stats.templates_rejected += 1;
                    set = &set[total..];
                    continue;
                }
                for (i, f) in set[hdr..total].chunks_exact(4).enumerate() {
                    specs.push(FieldSpec {
                        id: be16(f, 0),
                        len: be16(f, 2),
                        enterprise: false,
                        v9_scope: i * 4 < scope_bytes,
                    });
                }
                consumed = total;
            }
            set = &set[consumed..];
            if options {
                self.stats.options_templates += 1;
            } else {
                self.stats.templates += 1;
            }
            match compile(specs.into_iter(), ipfix, options) {
                Some(t) => self.insert_template(key, tid, t, out),
                None => self.stats.templates_rejected += 1,
            }
        }
    }

    pub(crate) fn withdraw(&mut self, key: StreamKey, tid: Option<u16>, options: bool) {
        let Some(st) = self.streams.get_mut(&key) else {
            return;
        };
        let before = st.templates.len();
        match tid {
            Some(t) => {
                st.templates.remove(&t);
            }
            None => st.templates.retain(|_, t| t.options != options),
        }
        self.template_count -= before - st.templates.len();
    }

    pub(crate) fn insert_template(
        &mut self,
        key: StreamKey,
        tid: u16,
        t: Template,
        out: &mut Vec<NetflowRecord>,
    ) {
        let Some(st) = self.streams.get_mut(&key) else {
            return;
        };
        if !st.templates.contains_key(&tid) {
            if self.template_count >= self.config.max_templates {
                self.stats.templates_rejected += 1;
                return;
            }
            self.template_count += 1;
        }
        let t = Arc::new(t);
        st.templates.insert(tid, Arc::clone(&t));
        // Release data that was waiting for this template.
        if self
            .pending
            .iter()
            .any(|p| p.key == key && p.template_id == tid)
        {
            let (hit, keep): (VecDeque<Pending>, VecDeque<Pending>) =
                std::mem::take(&mut self.pending)
                    .into_iter()
                    .partition(|p| p.key == key && p.template_id == tid);
            self.pending = keep;
            for p in hit {
                self.pending_bytes -= p.data.len();
                let before = self.stats.records;
                self.decode_records(key, &t, &p.data, p.ctx, out);
                self.stats.records_from_pending += self.stats.records - before;
            }
        }
    }

    /// Decodes a data set, or buffers it when its template is unknown (`None`).
    pub(crate) fn data_set(
        &mut self,
        key: StreamKey,
        tid: u16,
        set: &[u8],
        ctx: Ctx,
        out: &mut Vec<NetflowRecord>,
    ) -> Option<usize> {
        let tpl = self
            .streams
            .get(&key)
            .and_then(|s| s.templates.get(&tid))
            .cloned();
        match tpl {
            Some(t) => Some(self.decode_records(key, &t, set, ctx, out)),
            None => {
                self.stats.data_sets_buffered += 1;
                self.buffer(Pending {
                    key,
                    template_id: tid,
                    data: set.to_vec(),
                    ctx,
                });
                None
            }
        }
    }

    /// Decodes every record of a data set with a known template. Returns the
    /// number of data records (flows or options).
    pub(crate) fn decode_records(
        &mut self,
        key: StreamKey,
        tpl: &Template,
        set: &[u8],
        ctx: Ctx,
        out: &mut Vec<NetflowRecord>,
    ) -> usize {
        let Some(st) = self.streams.get_mut(&key) else {
            return 0;
        };
        let mut rest = set;
        let mut n = 0usize;
        // Fewer bytes than the smallest record: padding (RFC 3954 §5.3, RFC 7011 §3.3.1).
        while rest.len() >= tpl.min_len {
            self.raw.clear();
            // `used >= min_len >= 1` (compile rejects empty records); checked
            // again here so no template can ever stall this loop.
            let Some(used) = walk(tpl, rest, &mut self.raw).filter(|&u| u > 0) else {
                self.stats.malformed += 1;
                break;
            };
            rest = &rest[used..];
            n += 1;
            let raw = &self.raw;
            if tpl.options {
                self.stats.options_records += 1;
                if let Some(init) = raw.get(Fk::SysInitMs) {
                    st.sys_init_ms = Some(init);
                }
                if let Some(interval) = raw.own_sampling() {
                    st.sampling = Some(interval);
                    if let Some(id) = raw.sampler() {
                        if st.samplers.len() < self.config.max_samplers
                            || st.samplers.contains_key(&id)
                        {
                            st.samplers.insert(id, interval);
                        }
                    }
                }
            } else {
                self.stats.records += 1;
                out.push(build(raw, key, st, ctx));
            }
        }
        n
    }
}
