//! Reads capture files and cuts them into chunks of whole, owned records.
//!
//! This is the first stage of wormsign's data path. It provides:
//!
//! - [`CaptureReader`]: detects the container by its magic bytes (never by
//!   the file name) and reads it with large `read()` calls. Supported are
//!   legacy pcap in both byte orders with microsecond or nanosecond
//!   timestamps and Kuznetsov's modified pcap, and pcapng with any number of
//!   sections (each may switch byte order), interfaces with their own link
//!   type, `if_tsresol` and `if_tsoffset`, Enhanced, Simple and obsolete
//!   Packet Blocks. Either may be gzip- or zstd-compressed ([`Compression`]).
//! - [`Chunk`]: a batch of records, their captured bytes back to back in one
//!   buffer, described by one [`RecordMeta`] each (timestamp in Unix
//!   nanoseconds, link type, original length, stream offset).
//! - [`CaptureError`]: the one error type; damage carries the byte offset
//!   where it was found ([`CaptureError::offset`]).
//! - [`linktype`]: the `LINKTYPE_*` values wormsign cares about.
//!
//! A reader hands out [`Chunk`]s through [`CaptureReader::read_chunk`]; a
//! [`Container`] and a [`Compression`] say what was detected.
//!
//! # Design: chunks own whole records
//!
//! A chunk never ends inside a record and owns its bytes instead of lending
//! slices of the reader's buffer: it is `Send`, holds no borrow, and needs no
//! lifetime tricks to cross a channel, so the reader keeps reading while
//! workers decode earlier chunks. It owns them without a copy: the records
//! point into the buffer `read()` filled, the chunk takes that buffer over
//! whole, and the reader continues in the storage of the chunk it was given
//! (recycled from the workers), moving only the read-ahead past the chunk's
//! last record. Copying every record into the chunk cost about a tenth of
//! the pipeline's CPU time.
//!
//! Damaged input never panics: the records before the damage are returned,
//! then an error with the offset, then end of input.
//!
//! # Example
//!
//! ```
//! use std::io::Cursor;
//! use wormsign_capture::{linktype, CaptureReader, Chunk, Container};
//!
//! // A little-endian microsecond pcap with one 4-byte Ethernet record.
//! let mut pcap = Vec::new();
//! pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic
//! pcap.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
//! pcap.extend_from_slice(&4u16.to_le_bytes());
//! pcap.extend_from_slice(&[0; 8]); // thiszone, sigfigs
//! pcap.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
//! pcap.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
//! for field in [1_700_000_000u32, 250_000, 4, 60] {
//!     pcap.extend_from_slice(&field.to_le_bytes()); // sec, usec, caplen, orig_len
//! }
//! pcap.extend_from_slice(b"\xde\xad\xbe\xef");
//!
//! let mut reader = CaptureReader::new(Box::new(Cursor::new(pcap)))?;
//! assert_eq!(
//!     reader.container(),
//!     Container::Pcap { big_endian: false, nanos: false, modified: false }
//! );
//! let mut chunk = Chunk::default();
//! let more = reader.read_chunk(&mut chunk, 1 << 20)?;
//! assert!(!more); // clean end of input
//! let (meta, data) = chunk.iter().next().unwrap();
//! assert_eq!(meta.ts_ns, 1_700_000_000_250_000_000);
//! assert_eq!(meta.link_type, linktype::ETHERNET);
//! assert_eq!((meta.orig_len, meta.offset), (60, 24));
//! assert_eq!(data, b"\xde\xad\xbe\xef");
//! # Ok::<(), wormsign_capture::CaptureError>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod chunk;
mod error;
mod input;
pub mod linktype;
mod pcap;
mod pcapng;
mod reader;
pub mod time;

pub use chunk::{Chunk, RecordMeta};
pub use error::CaptureError;
pub use input::Counting;
pub use reader::{CaptureReader, Compression, Container};

/// Largest captured length accepted for one record (256 KiB, Wireshark's
/// limit); a larger caplen is reported as [`CaptureError::Corrupt`].
pub const MAX_CAPLEN: u32 = 262_144;
