//! The one error type of this crate.

/// Why a capture could not be opened or read to its end.
///
/// Every variant that describes damage inside the stream carries the byte
/// offset (in the decompressed stream) of the record or block where the
/// damage was found; [`CaptureError::offset`] returns it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input is not a pcap or pcapng capture (nor a gzip/zstd-compressed
    /// one), or it is empty. The reason is one line, e.g.
    /// `not a pcap or pcapng capture (starts with 50 4b 03 04)`.
    #[error("{reason}")]
    NotACapture {
        /// One-line human-readable explanation.
        reason: String,
    },
    /// The input ends inside a file header, a record header, a record or a block.
    #[error(
        "capture truncated at byte {offset}: {needed} bytes needed, only {available} available"
    )]
    Truncated {
        /// Offset of the header of the record or block that is cut short.
        offset: u64,
        /// Bytes the record or block needs (header included).
        needed: u64,
        /// Bytes the input still held from `offset` on.
        available: u64,
    },
    /// A record or block is malformed: bogus length, unknown interface, …
    #[error("corrupt capture at byte {offset}: {reason}")]
    Corrupt {
        /// Offset of the header of the bad record or block.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading (or decompressing) the source failed.
    #[error("I/O error while reading capture: {0}")]
    Io(#[from] std::io::Error),
}

impl CaptureError {
    /// Byte offset in the (decompressed) stream where the damage was found,
    /// for [`CaptureError::Truncated`] and [`CaptureError::Corrupt`].
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Truncated { offset, .. } | CaptureError::Corrupt { offset, .. } => {
                Some(*offset)
            }
            CaptureError::NotACapture { .. } | CaptureError::Io(_) => None,
        }
    }
}
