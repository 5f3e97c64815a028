//! `exposed_service`: completed inbound sessions from outside to an internal server on a
//! port worms break in through (RDP, SMB, MSSQL by default). Not an infection sign by
//! itself: the way in, to be closed.

use std::net::IpAddr;

use hashbrown::HashMap;

use super::counting::Tally;
use super::finding::Finding;
use super::{
    BoxedRule, Events, Findings, FlowFacts, Key, Observing, RuleState, RunState, Watchlist,
};
use crate::config::DetectConfig;
use crate::distinct::CappedSet;
use crate::model::{DnsEvent, Rule, Tier};

const TCP: u8 = 6;

pub(super) fn start<'a>(c: &'a DetectConfig, _dns: &[&'a DnsEvent]) -> BoxedRule<'a> {
    Box::new(ExposedService {
        c,
        servers: HashMap::new(),
    })
}

struct ExposedService<'a> {
    c: &'a DetectConfig,
    /// Per (internal server, port).
    servers: HashMap<(IpAddr, u16), Exposure>,
}

/// Inbound sessions of one server port.
#[derive(Default)]
struct Exposure {
    sessions: Tally,
    /// External clients.
    peers: CappedSet,
}

impl RuleState for ExposedService<'_> {
    // One server's inbound sessions, from many outside clients.
    fn key(&self) -> Key {
        Key::Responder
    }

    fn watch(&self, watchlist: &mut Watchlist) {
        watchlist.ports.extend(self.c.exposed_ports.iter().copied());
    }

    fn observe(&mut self, flow: &FlowFacts<'_>, run: &mut Observing<'_>) {
        let c = self.c;
        let f = flow.flow;
        let (src, dst) = (f.orig_addr, f.resp_addr);
        let inbound = f.has_ports
            && c.exposed_ports.contains(&f.resp_port)
            && !c.is_internal(src)
            && c.is_internal(dst);
        if !(inbound && f.completed) {
            return;
        }
        if let Some(e) = run.pair_entry(&mut self.servers, (dst, f.resp_port)) {
            e.sessions.touch(f.ts_first);
            run.insert_distinct(&mut e.peers, src);
        }
    }

    fn finish(self: Box<Self>, _: &Events<'_>, _: &mut RunState<'_>, found: &mut Findings) {
        let c = self.c;
        for (&(server, port), e) in &self.servers {
            let service = c
                .services
                .iter()
                .find(|x| x.port == port && x.proto == TCP)
                .map(|x| x.name.clone())
                .unwrap_or_else(|| format!("tcp/{port}"));
            let mut peers: Vec<IpAddr> = e.peers.exact().collect();
            peers.sort();
            let shown: Vec<String> = peers.iter().take(5).map(|p| p.to_string()).collect();
            let evidence = format!(
                "{} completed inbound {service} sessions from {} external hosts ({}{})",
                e.sessions.attempts,
                e.peers.len(),
                shown.join(", "),
                if peers.len() > 5 { ", …" } else { "" }
            );
            let finding = Finding {
                tier: Tier::Day,
                service: &service,
                distinct: e.peers.len(),
                worm: false,
                ..e.sessions
                    .finding(Rule::ExposedService, server, None, evidence)
            };
            found.raise(finding.alert(c));
        }
    }
}
