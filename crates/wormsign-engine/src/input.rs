//! What `analyze` reads: capture files, other tools' flow logs, directories of them, or
//! standard input.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use wormsign_capture::CaptureReader;
use wormsign_logs::LogReader;

use crate::Error;

/// One input: a path or standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A capture file or a flow log.
    File(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Input {
    /// How the input is named in warnings and metadata.
    pub fn name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "-".to_string(),
        }
    }

    /// Its size in bytes, when it is a file (for a progress bar).
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Stdin => None,
        }
    }

    /// Opens the input as what its first bytes say it is: a log (see [`wormsign_logs`])
    /// or else a capture. The input is read once, from its start, whatever it is: a
    /// named pipe or standard input cannot be opened again.
    pub(crate) fn open(&self) -> Result<Opened, wormsign_capture::CaptureError> {
        let raw_bytes = Arc::new(AtomicU64::new(0));
        let raw: Box<dyn Read + Send> = match self {
            Input::File(p) => Box::new(std::fs::File::open(p)?),
            Input::Stdin => Box::new(std::io::stdin()),
        };
        match wormsign_logs::open(raw, Arc::clone(&raw_bytes))? {
            wormsign_logs::Opened::Log(log) => Ok(Opened::Log(log, raw_bytes)),
            wormsign_logs::Opened::Other(rest) => CaptureReader::new(rest).map(Opened::Capture),
        }
    }
}

/// An input opened for reading.
pub(crate) enum Opened {
    /// A capture.
    Capture(CaptureReader),
    /// A flow log, with the count of raw (compressed) bytes read from it.
    Log(Box<LogReader<Box<dyn BufRead + Send>>>, Arc<AtomicU64>),
}

/// The inputs named by `paths`: directories expanded recursively in sorted order, files
/// and `-` (standard input) kept as given. A path that does not exist is an error
/// ([`Error::Io`], not found), as is finding no file at all.
pub fn expand_inputs<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Input>, Error> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        if path.as_os_str() == "-" {
            out.push(Input::Stdin);
        } else if path.is_dir() {
            walk_dir(path, &mut out)?;
        } else if path.exists() {
            out.push(Input::File(path.to_path_buf()));
        } else {
            let missing =
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory");
            return Err(Error::io(path)(missing));
        }
    }
    if out.is_empty() {
        return Err(Error::Config("no files found in the inputs".into()));
    }
    Ok(out)
}

fn walk_dir(dir: &Path, out: &mut Vec<Input>) -> Result<(), Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk_dir(&path, out)?;
        } else if path.is_file() {
            out.push(Input::File(path));
        }
    }
    Ok(())
}
