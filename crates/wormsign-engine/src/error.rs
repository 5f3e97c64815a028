//! The engine's one error type.

use std::path::PathBuf;

/// Why a run produced no outputs. Damage to an input is not an error: it is a
/// [`crate::Warning`] in the run summary, and the outputs hold everything read before it
/// (a run that could read no input at all says so with `inputs_usable == 0`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file, directory or socket (named `udp://ADDR`) could not be read or written.
    // Not named `source`: thiserror would also return it as the error's source, and
    // error reports that print the chain (anyhow's `{:#}`) would say it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Writing a table, or reading a stored one back, failed.
    #[error(transparent)]
    Table(#[from] wormsign_columnar::ColumnarError),
    /// An option or rules file is not valid.
    #[error("{0}")]
    Config(String),
    /// What the parts of a distributed detection exchange (a tagged flow batch, a part's
    /// findings) is not valid.
    #[error("distributed detection: {0}")]
    Parts(String),
    /// A pipeline thread stopped without reporting; nothing was written.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io { path, error }
    }
}
