#!/usr/bin/env python3
"""Writes a wormsign run's flows and DNS tables as the logs another tool would have
written of the same traffic, for benches/inputs.sh: Zeek's conn.log and dns.log (TSV,
Conn::Info and DNS::Info fields) and Suricata's eve.json (flow and v2 dns events).

    benches/flows_to_logs.py RUN_DIR OUT_DIR
"""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

HEADER = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\t{path}\n#fields\t{fields}\n"
CONN = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
        "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
        "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
        "tunnel_parents"]
DNS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "trans_id",
       "rtt", "query", "qclass", "qclass_name", "qtype", "qtype_name", "rcode", "rcode_name",
       "AA", "TC", "RD", "RA", "Z", "answers", "TTLs", "rejected"]
ZEEK_PROTO = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmp6": "icmp"}
EVE_PROTO = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMP", "icmp6": "IPv6-ICMP"}


def secs(ts) -> str:
    return f"{ts.timestamp():.6f}"


def iso(ts) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def main(run: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    flows = pq.read_table(run / "flows.parquet").to_pylist()
    dns = pq.read_table(run / "dns.parquet").to_pylist()
    with open(out / "conn.log", "w") as conn, open(out / "eve.json", "w") as eve:
        conn.write(HEADER.format(path="conn", fields="\t".join(CONN)))
        for i, f in enumerate(flows):
            if f["proto"] not in ZEEK_PROTO:
                continue
            duration = (f["last_ts"] - f["ts"]).total_seconds()
            conn.write("\t".join(str(v) for v in [
                secs(f["ts"]), f"C{i}", f["orig_h"], f["orig_p"], f["resp_h"], f["resp_p"],
                ZEEK_PROTO[f["proto"]], "-", f"{duration:.6f}", f["orig_bytes"], f["resp_bytes"],
                f["conn_state"], "-", "-", 0, f["history"] or "-", f["orig_pkts"],
                f["orig_ip_bytes"], f["resp_pkts"], f["resp_ip_bytes"], "(empty)"]) + "\n")
            event = {
                "timestamp": iso(f["last_ts"]), "flow_id": i, "event_type": "flow",
                "src_ip": f["orig_h"], "src_port": f["orig_p"], "dest_ip": f["resp_h"],
                "dest_port": f["resp_p"], "proto": EVE_PROTO[f["proto"]],
                "flow": {"pkts_toserver": f["orig_pkts"], "pkts_toclient": f["resp_pkts"],
                         "bytes_toserver": f["orig_ip_bytes"] + 14 * f["orig_pkts"],
                         "bytes_toclient": f["resp_ip_bytes"] + 14 * f["resp_pkts"],
                         "start": iso(f["ts"]), "end": iso(f["last_ts"])},
            }
            if f["proto"] == "tcp":
                event["tcp"] = {"tcp_flags_ts": f"{f['orig_tcp_flags']:02x}",
                                "tcp_flags_tc": f"{f['resp_tcp_flags']:02x}"}
            eve.write(json.dumps(event) + "\n")
        for m in dns:
            answer = m["is_response"]
            src, dst = ("server", "client") if answer else ("client", "server")
            event = {"timestamp": iso(m["ts"]), "event_type": "dns",
                     "src_ip": m[f"{src}_h"], "src_port": m[f"{src}_p"],
                     "dest_ip": m[f"{dst}_h"], "dest_port": m[f"{dst}_p"],
                     "proto": m["proto"].upper(),
                     "dns": {"type": "answer" if answer else "query", "id": m["trans_id"],
                             "rrname": m["qname"], "rrtype": m["qtype_name"]}}
            if answer:
                event["dns"].update(version=2, rcode=m["rcode_name"], answers=[
                    {"rrname": m["qname"], "rrtype": t, "ttl": ttl, "rdata": a}
                    for a, t, ttl in zip(m["answers"] or [], m["answer_types"] or [], m["ttls"] or [])])
            eve.write(json.dumps(event) + "\n")
    with open(out / "dns.log", "w") as log:
        log.write(HEADER.format(path="dns", fields="\t".join(DNS)))
        for m in dns:
            if m["is_response"]:
                continue
            log.write("\t".join(str(v) for v in [
                secs(m["ts"]), "C", m["client_h"], m["client_p"], m["server_h"], m["server_p"],
                m["proto"], m["trans_id"], "-", m["qname"] or "-", m["qclass"] or 1, "-",
                m["qtype"] or 0, "-", "-", "-", "F", "F", "T", "F", 0, "-", "-", "F"]) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
