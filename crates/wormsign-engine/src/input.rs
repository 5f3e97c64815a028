//! What `analyze` reads: capture files, directories of them, or standard input.

use std::path::{Path, PathBuf};

use wormsign_capture::CaptureReader;

use crate::Error;

/// One input: a path or standard input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A capture file.
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

    pub(crate) fn open(&self) -> Result<CaptureReader, wormsign_capture::CaptureError> {
        match self {
            Input::File(p) => CaptureReader::open(p),
            Input::Stdin => CaptureReader::new(Box::new(std::io::stdin())),
        }
    }
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
