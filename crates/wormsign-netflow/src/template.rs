//! Compiled NetFlow v9 / IPFIX templates and the per-record field walk.
//!
//! A template is compiled once into a short list of [`Op`]s: the fields wormsign
//! uses keep their kind and length, every run of other fixed-length fields is
//! merged into one skip, zero-length fields vanish, and variable-length fields
//! (IPFIX only) stay as single ops. Walking a record therefore costs
//! O(used fields + variable-length fields), never O(template fields): a template
//! of 10 000 zero-length fields plus one byte decodes as fast as a one-byte one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The information elements wormsign reads (IANA numbering, shared by v9 for
/// ids below 128 and by the IANA-registered ids v9 exporters reuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Fk {
    Bytes,
    Pkts,
    BytesTotal,
    PktsTotal,
    OutBytes,
    OutPkts,
    Proto,
    TcpFlags,
    SrcPort,
    DstPort,
    Src4,
    Dst4,
    Src6,
    Dst6,
    InIf,
    OutIf,
    SrcAs,
    DstAs,
    FirstUp,
    LastUp,
    StartS,
    EndS,
    StartMs,
    EndMs,
    StartNtp,
    EndNtp,
    StartDeltaUs,
    EndDeltaUs,
    SysInitMs,
    SamplingInterval,
    SamplerRandomInterval,
    SamplerId,
    SelectorId,
    PktInterval,
    PktSpace,
    SamplingSize,
    SamplingPopulation,
    Vlan,
    Direction,
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
}

/// Maps an information element id (enterprise bit clear) to the kind wormsign
/// reads, if any.
pub(crate) fn field_kind(id: u16) -> Option<Fk> {
    Some(match id {
        1 => Fk::Bytes,
        2 => Fk::Pkts,
        4 => Fk::Proto,
        6 => Fk::TcpFlags,
        7 => Fk::SrcPort,
        8 => Fk::Src4,
        10 => Fk::InIf,
        11 => Fk::DstPort,
        12 => Fk::Dst4,
        14 => Fk::OutIf,
        16 => Fk::SrcAs,
        17 => Fk::DstAs,
        21 => Fk::LastUp,
        22 => Fk::FirstUp,
        23 => Fk::OutBytes,
        24 => Fk::OutPkts,
        27 => Fk::Src6,
        28 => Fk::Dst6,
        32 | 139 => Fk::IcmpTypeCode,
        34 => Fk::SamplingInterval,
        48 => Fk::SamplerId,
        50 => Fk::SamplerRandomInterval,
        58 | 243 => Fk::Vlan,
        61 => Fk::Direction,
        85 => Fk::BytesTotal,
        86 => Fk::PktsTotal,
        150 => Fk::StartS,
        151 => Fk::EndS,
        152 => Fk::StartMs,
        153 => Fk::EndMs,
        154 | 156 => Fk::StartNtp,
        155 | 157 => Fk::EndNtp,
        158 => Fk::StartDeltaUs,
        159 => Fk::EndDeltaUs,
        160 => Fk::SysInitMs,
        176 | 178 => Fk::IcmpType,
        177 | 179 => Fk::IcmpCode,
        302 => Fk::SelectorId,
        305 => Fk::PktInterval,
        306 => Fk::PktSpace,
        309 => Fk::SamplingSize,
        310 => Fk::SamplingPopulation,
        _ => return None,
    })
}

/// One step of the record walk.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Skip this many bytes (merged run of unused fixed-length fields).
    Skip(u32),
    /// A used fixed-length field.
    Field(Fk, u16),
    /// An unused variable-length field (IPFIX length 65535).
    VarSkip,
    /// A used variable-length field.
    VarField(Fk),
}

/// A compiled template.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) ops: Vec<Op>,
    /// Smallest possible record length (variable-length fields count one
    /// byte, their length prefix). Always at least 1.
    pub(crate) min_len: usize,
    /// Whether this is an options template (its records configure the
    /// exporter: sampling, system init time; they are not flows).
    pub(crate) options: bool,
}

/// One field of a template as announced.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldSpec {
    pub(crate) id: u16,
    pub(crate) len: u16,
    /// Enterprise-specific (IPFIX enterprise bit): never interpreted, skipped by length.
    pub(crate) enterprise: bool,
    /// NetFlow v9 options scope field: its type numbers are a different
    /// registry (1 = system, 2 = interface, …), so it is never interpreted.
    pub(crate) v9_scope: bool,
}

/// Length value announcing an IPFIX variable-length field.
pub(crate) const VARLEN: u16 = 65535;

/// Compiles a template. `ipfix` enables variable-length fields. Returns `None`
/// for a template whose records would be empty (every field of length 0): such
/// a template could never advance through a data set.
pub(crate) fn compile(
    fields: impl Iterator<Item = FieldSpec>,
    ipfix: bool,
    options: bool,
) -> Option<Template> {
    let mut ops = Vec::new();
    let mut seen: u64 = 0;
    let mut min_len = 0usize;
    let mut skip = 0u32;
    for f in fields {
        let kind = if f.enterprise || f.v9_scope {
            None
        } else {
            field_kind(f.id).filter(|k| seen & (1u64 << *k as u8) == 0)
        };
        if ipfix && f.len == VARLEN {
            if skip > 0 {
                ops.push(Op::Skip(skip));
                skip = 0;
            }
            min_len += 1;
            match kind {
                Some(k) => {
                    seen |= 1u64 << k as u8;
                    ops.push(Op::VarField(k));
                }
                None => ops.push(Op::VarSkip),
            }
            continue;
        }
        if f.len == 0 {
            continue;
        }
        min_len += f.len as usize;
        match kind {
            Some(k) => {
                if skip > 0 {
                    ops.push(Op::Skip(skip));
                    skip = 0;
                }
                seen |= 1u64 << k as u8;
                ops.push(Op::Field(k, f.len));
            }
            None => skip += u32::from(f.len),
        }
    }
    if skip > 0 {
        ops.push(Op::Skip(skip));
    }
    if min_len == 0 {
        return None;
    }
    ops.shrink_to_fit();
    Some(Template {
        ops,
        min_len,
        options,
    })
}

/// Number of [`Fk`] kinds.
const KINDS: usize = Fk::IcmpCode as usize + 1;

/// Raw values of one data record, before time conversion and sampling lookup.
///
/// Resetting it per record costs one store (`present = 0`): values are only
/// read when their bit in `present` is set.
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    present: u64,
    vals: [u64; KINDS],
    pub(crate) src: Option<IpAddr>,
    pub(crate) dst: Option<IpAddr>,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            present: 0,
            vals: [0; KINDS],
            src: None,
            dst: None,
        }
    }
}

/// Big-endian unsigned integer of 1..=8 bytes (reduced-size encoding, RFC 7011
/// §6.2); longer values keep their low 8 bytes.
#[inline]
pub(crate) fn be_uint(b: &[u8]) -> u64 {
    let b = &b[b.len().saturating_sub(8)..];
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

impl Raw {
    /// Forgets every value.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.present = 0;
        self.src = None;
        self.dst = None;
    }

    /// The value of `k`, if the record had it.
    #[inline]
    pub(crate) fn get(&self, k: Fk) -> Option<u64> {
        (self.present & (1u64 << k as u8) != 0).then(|| self.vals[k as usize])
    }

    /// The value of `k`, 0 if absent.
    #[inline]
    pub(crate) fn or0(&self, k: Fk) -> u64 {
        self.get(k).unwrap_or(0)
    }

    #[inline]
    fn set(&mut self, k: Fk, b: &[u8]) {
        match k {
            Fk::Src4 | Fk::Dst4 => {
                if let Ok(a) = <[u8; 4]>::try_from(b) {
                    let a = Some(IpAddr::V4(Ipv4Addr::from(a)));
                    if k == Fk::Src4 {
                        self.src = self.src.or(a);
                    } else {
                        self.dst = self.dst.or(a);
                    }
                }
            }
            Fk::Src6 | Fk::Dst6 => {
                if let Ok(a) = <[u8; 16]>::try_from(b) {
                    let a = Some(IpAddr::V6(Ipv6Addr::from(a)));
                    if k == Fk::Src6 {
                        self.src = self.src.or(a);
                    } else {
                        self.dst = self.dst.or(a);
                    }
                }
            }
            _ => {
                self.vals[k as usize] = be_uint(b);
                self.present |= 1u64 << k as u8;
            }
        }
    }

    /// The sampling interval this record states itself (1 in N), if any.
    pub(crate) fn own_sampling(&self) -> Option<u32> {
        let n = if let Some(n) = self.get(Fk::SamplingInterval).filter(|&n| n > 0) {
            n
        } else if let Some(n) = self.get(Fk::SamplerRandomInterval).filter(|&n| n > 0) {
            n
        } else if let (Some(i), Some(space)) = (
            self.get(Fk::PktInterval).filter(|&i| i > 0),
            self.get(Fk::PktSpace),
        ) {
            // RFC 5477: `interval` packets selected, then `space` skipped.
            i.saturating_add(space) / i
        } else if let (Some(s), Some(p)) = (
            self.get(Fk::SamplingSize).filter(|&s| s > 0),
            self.get(Fk::SamplingPopulation),
        ) {
            // n-out-of-N (Cisco sends this with samplingPacketInterval 1).
            p / s
        } else {
            // An interval alone: read as 1 in `interval`.
            self.get(Fk::PktInterval).filter(|&i| i > 1)?
        };
        Some(n.clamp(1, u64::from(u32::MAX)) as u32)
    }

    /// The sampler / selector this record refers to, if any.
    pub(crate) fn sampler(&self) -> Option<u64> {
        self.get(Fk::SamplerId).or(self.get(Fk::SelectorId))
    }
}

/// Decodes one record at the start of `data` into `raw`. Returns the number of
/// bytes it used (at least `tpl.min_len`, so at least 1), or `None` when the
/// record runs past the end of `data`.
#[inline]
pub(crate) fn walk(tpl: &Template, data: &[u8], raw: &mut Raw) -> Option<usize> {
    let mut pos = 0usize;
    for op in &tpl.ops {
        match *op {
            Op::Skip(n) => pos += n as usize,
            Op::Field(k, len) => {
                let b = data.get(pos..pos + len as usize)?;
                raw.set(k, b);
                pos += len as usize;
            }
            Op::VarSkip | Op::VarField(_) => {
                let (hdr, len) = var_len(data.get(pos..)?)?;
                let start = pos + hdr;
                let b = data.get(start..start + len)?;
                if let Op::VarField(k) = *op {
                    raw.set(k, b);
                }
                pos = start + len;
            }
        }
    }
    if pos > data.len() {
        return None;
    }
    Some(pos)
}

/// IPFIX variable-length prefix (RFC 7011 §7): one byte, or 255 followed by two.
#[inline]
fn var_len(b: &[u8]) -> Option<(usize, usize)> {
    match *b.first()? {
        255 => {
            let l = b.get(1..3)?;
            Some((3, usize::from(u16::from_be_bytes([l[0], l[1]]))))
        }
        n => Some((1, usize::from(n))),
    }
}
