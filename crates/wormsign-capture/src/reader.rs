//! Format detection and the chunking reader.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::chunk::Chunk;
use crate::error::CaptureError;
use crate::input::{read_prefix, Counting, InBuf};
use crate::pcap::{self, PcapFormat, FILE_HEADER_LEN};
use crate::pcapng::{self, NgState};

/// Largest chunk target: keeps `RecordMeta::data_start` (below the target plus one
/// record or block) within `u32`.
const MAX_CHUNK: usize = 1 << 31;

/// The container format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// Legacy libpcap format.
    Pcap {
        /// Fields are big-endian.
        big_endian: bool,
        /// Timestamps carry nanoseconds (magic `a1b23c4d`) instead of microseconds.
        nanos: bool,
        /// Kuznetsov's modified pcap (magic `a1b2cd34`, 24-byte record headers).
        modified: bool,
    },
    /// pcapng (one or more sections).
    PcapNg,
}

/// Compression wrapped around the capture (or a log: `wormsign-logs` reads through the
/// same), detected by magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain capture.
    None,
    /// gzip (`1f 8b`), possibly several concatenated members.
    Gzip,
    /// Zstandard (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// What the first bytes of a source say it is compressed with.
    pub fn of(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// `source` (from its first byte) decompressed.
    pub fn decoder<'a>(
        self,
        source: Box<dyn Read + Send + 'a>,
    ) -> std::io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => source,
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(source)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(source)?),
        })
    }

    /// Its name in messages (`""` for none).
    fn label(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

enum Format {
    Pcap(PcapFormat),
    PcapNg(NgState),
}

/// Reads a capture and cuts it into [`Chunk`]s of whole records.
///
/// Created with [`CaptureReader::new`] or [`CaptureReader::open`]; then call
/// [`CaptureReader::read_chunk`] until it returns `Ok(false)` or an error.
pub struct CaptureReader {
    input: InBuf,
    format: Format,
    container: Container,
    compression: Compression,
    raw_read: Arc<AtomicU64>,
    /// Set after clean end of input or after an error.
    done: bool,
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn not_a_capture(what: &str, prefix: &[u8]) -> CaptureError {
    let reason = if prefix.is_empty() {
        if what.is_empty() {
            "empty input".to_string()
        } else {
            format!("empty input ({what} stream holds no data)")
        }
    } else if what.is_empty() {
        format!(
            "not a pcap or pcapng capture (starts with {})",
            hex_prefix(prefix)
        )
    } else {
        format!(
            "{what} stream does not hold a pcap or pcapng capture (starts with {})",
            hex_prefix(prefix)
        )
    };
    CaptureError::NotACapture { reason }
}

impl CaptureReader {
    /// Detects the format from the first bytes and prepares to read.
    ///
    /// A source that is not a capture gives [`CaptureError::NotACapture`]
    /// whose message is one line, e.g. `not a pcap or pcapng capture (starts
    /// with 50 4b 03 04)`; an empty source gives `empty input`. A legacy
    /// pcap cut inside its 24-byte file header gives
    /// [`CaptureError::Truncated`].
    pub fn new(source: Box<dyn Read + Send>) -> Result<Self, CaptureError> {
        let raw_read = Arc::new(AtomicU64::new(0));
        let mut raw: Box<dyn Read + Send> = Box::new(Counting::new(source, Arc::clone(&raw_read)));
        let head = read_prefix(&mut raw, 4)?;
        let compression = Compression::of(&head);
        let rest: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(raw));
        let mut stream = compression.decoder(rest)?;
        let what = compression.label();
        let magic = read_prefix(&mut stream, 4)?;
        let Ok(m4) = <[u8; 4]>::try_from(&magic[..]) else {
            return Err(not_a_capture(what, &magic));
        };
        let (container, format, prefix) =
            if let Some((big_endian, nanos, modified)) = pcap::magic(m4) {
                let mut header = magic;
                header.extend(read_prefix(&mut stream, FILE_HEADER_LEN - 4)?);
                let Ok(h) = <[u8; FILE_HEADER_LEN]>::try_from(&header[..]) else {
                    return Err(CaptureError::Truncated {
                        offset: 0,
                        needed: FILE_HEADER_LEN as u64,
                        available: header.len() as u64,
                    });
                };
                let f = pcap::parse_file_header(&h);
                let container = Container::Pcap {
                    big_endian,
                    nanos,
                    modified,
                };
                (container, Format::Pcap(f), h.to_vec())
            } else if u32::from_le_bytes(m4) == pcapng::SHB {
                (Container::PcapNg, Format::PcapNg(NgState::default()), magic)
            } else {
                return Err(not_a_capture(what, &magic));
            };
        let mut input = InBuf::new(stream, &prefix);
        if matches!(format, Format::Pcap(_)) {
            input.consume(FILE_HEADER_LEN);
        }
        Ok(CaptureReader {
            input,
            format,
            container,
            compression,
            raw_read,
            done: false,
        })
    }

    /// Opens the file at `path` and detects its format, as [`CaptureReader::new`].
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Self::new(Box::new(File::open(path)?))
    }

    /// The container format found.
    pub fn container(&self) -> Container {
        self.container
    }

    /// The compression found around the container.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Clears `chunk`, then appends whole records until they span `target_bytes`
    /// of the stream with their headers (at least one record) or the input ends.
    /// The chunk takes over the read buffer, and the reader continues in the
    /// chunk's previous storage: recycle chunks to avoid fresh allocations.
    ///
    /// - `Ok(true)`: the chunk is full; more records may follow.
    /// - `Ok(false)`: clean end of input (the chunk may still hold records).
    /// - `Err(e)`: damage (truncated record, bogus length, corrupt block, I/O
    ///   error). `chunk` still holds every whole record read before the
    ///   damage, and [`CaptureError::offset`] says where it is. Later calls
    ///   return `Ok(false)` with an empty chunk.
    ///
    /// Never panics, whatever the input bytes.
    pub fn read_chunk(
        &mut self,
        chunk: &mut Chunk,
        target_bytes: usize,
    ) -> Result<bool, CaptureError> {
        chunk.clear();
        if self.done {
            return Ok(false);
        }
        let target = target_bytes.min(MAX_CHUNK);
        let result = match &mut self.format {
            Format::Pcap(f) => pcap::read_records(&mut self.input, f, chunk, target)
                .map(|w| matches!(w, pcap::Walk::Full)),
            Format::PcapNg(st) => pcapng::read_records(&mut self.input, st, chunk, target)
                .map(|w| matches!(w, pcapng::Walk::Full)),
        };
        // The records point into the read buffer: the chunk takes it over, and reading
        // goes on in the chunk's old storage.
        let spare = std::mem::take(&mut chunk.buf);
        chunk.buf = self.input.hand_over(spare);
        match result {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.done = true;
                Ok(false)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// Bytes read from the underlying (possibly compressed) source so far,
    /// for progress reporting. Includes read-ahead not yet handed out.
    pub fn source_bytes_read(&self) -> u64 {
        self.raw_read.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("container", &self.container)
            .field("compression", &self.compression)
            .field("offset", &self.input.offset())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
