//! Flow logs other tools wrote, read as wormsign's own rows.
//!
//! - **Zeek**: `conn.log` and `dns.log`, TSV under Zeek's `#` header or JSON lines
//!   (`LogAscii::use_json`), as Zeek writes them or as `zeek-cut -c` leaves them.
//! - **Suricata**: `eve.json` `flow` and `dns` events.
//!
//! Any of them may be gzip'd (Zeek's log archiver) or zstd'd. [`open`] tells a log from
//! anything else by its first line, as the capture reader tells pcap from pcapng by its
//! magic, and [`LogReader`] turns lines into [`FlowRecord`]s (`source` = the tool) and
//! [`DnsRow`]s. Other logs and event types are counted and skipped. A line that cannot
//! be read is counted, the first one's byte offset kept for the warning, and reading goes
//! on at the next line: a log is line-framed, so damage costs only the damaged lines.

mod fields;
mod suricata;
mod time;
mod zeek;

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde_json::{Map, Value};
use wormsign_capture::{Compression, Counting};
use wormsign_decode::dns::{DnsMessage, DnsRow};
use wormsign_flow::FlowRecord;

use crate::fields::{JsonFields, TsvFields};
use crate::zeek::{TsvState, ZeekLog};

/// The kinds of log [`open`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Zeek's TSV logs (`#separator` header, or a `zeek-cut -c` column line).
    ZeekTsv,
    /// Zeek's JSON logs (one object per line).
    ZeekJson,
    /// Suricata's `eve.json` (one event per line).
    SuricataEve,
}

impl LogFormat {
    /// How the summary names the format.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::ZeekTsv => "zeek-tsv",
            LogFormat::ZeekJson => "zeek-json",
            LogFormat::SuricataEve => "suricata-eve",
        }
    }
}

/// What the first line of a (decompressed) input says it is, if it is a log.
pub fn sniff(head: &[u8]) -> Option<LogFormat> {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let line = head.split(|b| *b == b'\n').next()?;
    // The head may end inside a character: what decodes before it is enough.
    let line = match std::str::from_utf8(line) {
        Ok(line) => line,
        Err(e) => std::str::from_utf8(&line[..e.valid_up_to()]).ok()?,
    };
    let line = line.trim_end_matches('\r');
    if line.starts_with("#separator ") || line.starts_with("ts\tuid\t") {
        return Some(LogFormat::ZeekTsv);
    }
    if !line.starts_with('{') {
        return None;
    }
    // Only the keys matter; a first line longer than the head is cut, so the keys are
    // looked for as text rather than by parsing.
    if line.contains("\"event_type\"") {
        Some(LogFormat::SuricataEve)
    } else if line.contains("\"uid\"") || line.contains("\"id.orig_h\"") {
        Some(LogFormat::ZeekJson)
    } else {
        None
    }
}

/// Why a line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// A field the row needs is absent or unset.
    Missing(&'static str),
    /// A field's value does not parse.
    Invalid(&'static str),
    /// Not JSON, not UTF-8, or a TSV line with the wrong number of fields.
    Line(String),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Missing(field) => write!(f, "field {field} is missing"),
            Malformed::Invalid(field) => write!(f, "field {field} is not valid"),
            Malformed::Line(why) => f.write_str(why),
        }
    }
}

/// Counters of one or more logs read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Flow records read (Zeek `conn.log` lines, Suricata `flow` events).
    pub flows: u64,
    /// DNS log lines or events read (each may stand for a query and a reply).
    pub dns: u64,
    /// Lines of other logs or event types, skipped.
    pub other: u64,
    /// Lines that could not be read, skipped.
    pub malformed: u64,
}

impl LogStats {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &LogStats) {
        self.flows += other.flows;
        self.dns += other.dns;
        self.other += other.other;
        self.malformed += other.malformed;
    }
}

/// The first line that could not be read: where it is and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstMalformed {
    /// Line number, from 1.
    pub line: u64,
    /// Byte offset of the line's start in the (decompressed) log.
    pub offset: u64,
    /// What was wrong.
    pub why: Malformed,
}

/// The rows read from a stretch of log lines.
#[derive(Debug, Default)]
pub struct LogRows {
    /// Connections.
    pub flows: Vec<FlowRecord>,
    /// DNS messages.
    pub dns: Vec<DnsRow>,
}

/// Who asked and who answered in a DNS exchange, as a log line states them.
pub(crate) struct DnsEnds {
    pub(crate) client: std::net::IpAddr,
    pub(crate) client_port: u16,
    pub(crate) server: std::net::IpAddr,
    pub(crate) server_port: u16,
    pub(crate) tcp: bool,
}

impl DnsEnds {
    /// `message` between these ends at `ts_ns`, taking the next ordinal.
    pub(crate) fn row(&self, ts_ns: i64, ordinal: &mut u64, message: DnsMessage) -> DnsRow {
        let row = DnsRow {
            ts_ns,
            packet: *ordinal,
            client: self.client,
            client_port: self.client_port,
            server: self.server,
            server_port: self.server_port,
            tcp: self.tcp,
            message,
        };
        *ordinal += 1;
        row
    }
}

/// An input opened by [`open`].
pub enum Opened {
    /// A log, ready to read.
    Log(Box<LogReader<Box<dyn BufRead + Send>>>),
    /// Not a log: the input's bytes from the start, for another reader.
    Other(Box<dyn Read + Send>),
}

/// How many bytes of the raw input [`open`] reads to recognise a log.
const SNIFF_BYTES: usize = 64 * 1024;

/// Opens `input` as a log if its first line (after gzip or zstd, told by magic as for
/// captures) is one. `source_bytes` counts the raw bytes read, for progress.
pub fn open(mut input: Box<dyn Read + Send>, source_bytes: Arc<AtomicU64>) -> io::Result<Opened> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut input)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)?;
    let compression = Compression::of(&head);
    let Some(format) = sniff(&text_start(compression, &head)) else {
        return Ok(Opened::Other(Box::new(Cursor::new(head).chain(input))));
    };
    let raw = Counting::new(Cursor::new(head).chain(input), source_bytes);
    let text = BufReader::with_capacity(1 << 16, compression.decoder(Box::new(raw))?);
    Ok(Opened::Log(Box::new(LogReader::new(
        Box::new(text),
        format,
    ))))
}

/// The first bytes of the text `head` starts (as many as it yields: a compressed stream
/// cut by the head's end is not an error here).
fn text_start(compression: Compression, head: &[u8]) -> Vec<u8> {
    const PEEK: u64 = 4096;
    let mut out = Vec::new();
    if let Ok(text) = compression.decoder(Box::new(head)) {
        let _ = text.take(PEEK).read_to_end(&mut out);
    }
    out
}

/// The longest line read; a longer one is skipped as malformed (read in pieces, not
/// kept), so a log without line ends cannot take memory without bound. Zeek's and
/// Suricata's lines are a few kilobytes at most.
pub const MAX_LINE: usize = 1 << 20;

/// Reads one log's lines into rows.
pub struct LogReader<R> {
    input: R,
    format: LogFormat,
    tsv: TsvState,
    line: Vec<u8>,
    line_number: u64,
    offset: u64,
    stats: LogStats,
    first_malformed: Option<FirstMalformed>,
}

impl<R: BufRead> LogReader<R> {
    /// A reader of `input`, a log in `format`.
    pub fn new(input: R, format: LogFormat) -> Self {
        LogReader {
            input,
            format,
            tsv: TsvState::default(),
            line: Vec::new(),
            line_number: 0,
            offset: 0,
            stats: LogStats::default(),
            first_malformed: None,
        }
    }

    /// The log's format.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Reads up to `max_lines` lines into `out`. Each row takes the next `ordinal`: its
    /// `first_packet` (flows) or `packet` (DNS), unique across a run. Returns false at
    /// the end of the log; an error is the input's, at [`Self::offset`].
    pub fn read(
        &mut self,
        max_lines: usize,
        ordinal: &mut u64,
        out: &mut LogRows,
    ) -> io::Result<bool> {
        for _ in 0..max_lines {
            let Some((n, too_long)) = self.next_line()? else {
                return Ok(false);
            };
            self.line_number += 1;
            let line = std::mem::take(&mut self.line);
            let rows = if too_long {
                Err(Malformed::Line(format!("longer than {MAX_LINE} bytes")))
            } else {
                self.line_rows(&line, ordinal, out)
            };
            if let Err(why) = rows {
                self.stats.malformed += 1;
                self.first_malformed.get_or_insert(FirstMalformed {
                    line: self.line_number,
                    offset: self.offset,
                    why,
                });
            }
            self.line = line;
            self.offset += n as u64;
        }
        Ok(true)
    }

    /// Reads the next line into `self.line`: the bytes consumed and whether the line was
    /// longer than [`MAX_LINE`] (then it is read in pieces and not kept). `None` at the end.
    fn next_line(&mut self) -> io::Result<Option<(usize, bool)>> {
        self.line.clear();
        let (mut consumed, mut too_long) = (0, false);
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok((consumed > 0).then_some((consumed, too_long)));
            }
            let end = buf.iter().position(|&b| b == b'\n');
            let piece = &buf[..end.map_or(buf.len(), |i| i + 1)];
            if self.line.len() + piece.len() > MAX_LINE {
                too_long = true;
                self.line.clear();
            } else if !too_long {
                self.line.extend_from_slice(piece);
            }
            let n = piece.len();
            self.input.consume(n);
            consumed += n;
            if end.is_some() {
                return Ok(Some((consumed, too_long)));
            }
        }
    }

    fn line_rows(
        &mut self,
        line: &[u8],
        ordinal: &mut u64,
        out: &mut LogRows,
    ) -> Result<(), Malformed> {
        let text = std::str::from_utf8(line)
            .map_err(|_| Malformed::Line("not UTF-8".into()))?
            .trim_end_matches(['\n', '\r']);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Ok(());
        }
        match self.format {
            LogFormat::ZeekTsv => self.tsv_line(text, ordinal, out),
            LogFormat::ZeekJson => {
                let object = json_object(text)?;
                let f = JsonFields(&object);
                let log = match object.get("_path").and_then(Value::as_str) {
                    Some(path) => ZeekLog::from_path(path),
                    None => ZeekLog::from_names(|n| object.contains_key(n)),
                };
                self.zeek_row(log, &f, ordinal, out)
            }
            LogFormat::SuricataEve => {
                let object = json_object(text)?;
                let counted = suricata::event_rows(&JsonFields(&object), ordinal, out)?;
                match counted {
                    suricata::Event::Flow => self.stats.flows += 1,
                    suricata::Event::Dns => self.stats.dns += 1,
                    suricata::Event::Other => self.stats.other += 1,
                }
                Ok(())
            }
        }
    }

    fn tsv_line(
        &mut self,
        text: &str,
        ordinal: &mut u64,
        out: &mut LogRows,
    ) -> Result<(), Malformed> {
        if text.starts_with('#') {
            return if self.tsv.directive(text) {
                Ok(())
            } else {
                Err(Malformed::Line("unknown header line".into()))
            };
        }
        if self.tsv.header.columns.is_empty() {
            if text.starts_with("ts\t") {
                self.tsv.fields(text.split('\t'));
                return Ok(());
            }
            return Err(Malformed::Line("a row before any #fields header".into()));
        }
        let header = &self.tsv.header;
        // Zeek's separator is one tab; splitting on a char is several times faster than
        // on a string pattern, the largest cost of reading a TSV line.
        let values: Vec<&str> = match header.separator.as_bytes() {
            [b] if b.is_ascii() => text.split(char::from(*b)).collect(),
            _ => text.split(header.separator.as_str()).collect(),
        };
        if values.len() != header.columns.len() {
            return Err(Malformed::Line(format!(
                "{} fields where the header has {}",
                values.len(),
                header.columns.len()
            )));
        }
        let log = self.tsv.log.unwrap_or(ZeekLog::Other);
        let f = TsvFields { header, values };
        let (stats, result) = (&mut self.stats, zeek_rows(log, &f, ordinal, out));
        count(stats, log, &result);
        result
    }

    fn zeek_row(
        &mut self,
        log: ZeekLog,
        f: &JsonFields<'_>,
        ordinal: &mut u64,
        out: &mut LogRows,
    ) -> Result<(), Malformed> {
        let result = zeek_rows(log, f, ordinal, out);
        count(&mut self.stats, log, &result);
        result
    }

    /// What was read so far.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// The first line that could not be read, if any.
    pub fn first_malformed(&self) -> Option<&FirstMalformed> {
        self.first_malformed.as_ref()
    }

    /// Bytes of the (decompressed) log read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

fn json_object(text: &str) -> Result<Map<String, Value>, Malformed> {
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Malformed::Line("a JSON line that is not an object".into())),
        Err(e) => Err(Malformed::Line(format!("not JSON: {e}"))),
    }
}

/// A Zeek line's rows, by the log it belongs to.
fn zeek_rows(
    log: ZeekLog,
    f: &impl fields::Fields,
    ordinal: &mut u64,
    out: &mut LogRows,
) -> Result<(), Malformed> {
    match log {
        ZeekLog::Conn => {
            out.flows.push(zeek::conn_record(f, *ordinal)?);
            *ordinal += 1;
        }
        ZeekLog::Dns => zeek::dns_rows(f, ordinal, &mut out.dns)?,
        ZeekLog::Other => {}
    }
    Ok(())
}

fn count(stats: &mut LogStats, log: ZeekLog, result: &Result<(), Malformed>) {
    if result.is_err() {
        return;
    }
    match log {
        ZeekLog::Conn => stats.flows += 1,
        ZeekLog::Dns => stats.dns += 1,
        ZeekLog::Other => stats.other += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of `text`, read as `format`.
    fn rows(text: &str, format: LogFormat) -> (LogRows, LogStats) {
        let mut reader = LogReader::new(text.as_bytes(), format);
        let (mut out, mut ordinal) = (LogRows::default(), 0);
        while reader.read(2, &mut ordinal, &mut out).unwrap() {}
        (out, reader.stats().clone())
    }

    #[test]
    fn json_numbers_of_any_size_and_millisecond_times() {
        // serde_json writes 5 µs as 5e-6; TS_MILLIS writes integer milliseconds.
        let line = r#"{"ts":1575413096052,"uid":"C1","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":80,"proto":"tcp","duration":0.000005,"conn_state":"S0","history":"S","orig_pkts":1}"#;
        let (out, stats) = rows(line, LogFormat::ZeekJson);
        assert_eq!(stats.malformed, 0);
        let f = &out.flows[0];
        assert_eq!(f.ts_first, 1_575_413_096_052_000_000);
        assert_eq!(f.ts_last - f.ts_first, 5_000);
    }

    #[test]
    fn dns_answers_are_capped_and_a_bad_rtt_leaves_no_row() {
        let header = "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\trcode\tanswers\n";
        let many = vec!["192.0.2.1"; 100].join(",");
        let text = format!(
            "{header}1.0\tC\t10.0.0.1\t5353\t10.0.0.2\t53\tudp\t7\t0.5\ta.example\t0\t{many}\n\
             1.0\tC\t10.0.0.1\t5353\t10.0.0.2\t53\tudp\t8\tbogus\tb.example\t0\t-\n"
        );
        let (out, stats) = rows(&text, LogFormat::ZeekTsv);
        assert_eq!((stats.dns, stats.malformed), (1, 1));
        assert_eq!(out.dns.len(), 2, "the first line's query and reply only");
        assert_eq!(
            out.dns[1].message.answers.len(),
            wormsign_decode::dns::MAX_ANSWERS
        );
        assert_eq!(out.dns[1].ts_ns - out.dns[0].ts_ns, 500_000_000);
    }

    #[test]
    fn suricata_answers_past_one_without_text_data() {
        let line = r#"{"timestamp":"2024-01-01T00:00:00Z","event_type":"dns","src_ip":"10.0.0.2","src_port":53,"dest_ip":"10.0.0.1","dest_port":5353,"proto":"UDP","dns":{"version":3,"type":"response","id":1,"rcode":"BADVERS","queries":[{"rrname":"x.example","rrtype":"ANY"}],"answers":[{"rrname":"x.example","rrtype":"SOA","soa":{"mname":"ns"}},{"rrname":"x.example","rrtype":"A","ttl":5,"rdata":"192.0.2.9"}]}}"#;
        let (out, _) = rows(line, LogFormat::SuricataEve);
        let m = &out.dns[0].message;
        assert_eq!(out.dns[0].client.to_string(), "10.0.0.1");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].data, "192.0.2.9");
        assert_eq!(
            m.rcode,
            u8::MAX,
            "an rcode without a number here is not NOERROR"
        );
    }

    #[test]
    fn a_first_line_cut_inside_a_character_is_still_recognised() {
        let mut head = b"{\"event_type\":\"flow\",\"x\":\"".to_vec();
        head.extend("é".as_bytes());
        head.truncate(head.len() - 1);
        assert_eq!(sniff(&head), Some(LogFormat::SuricataEve));
    }
}
