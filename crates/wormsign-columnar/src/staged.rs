//! Files that appear only when complete: written under a hidden temporary name in their
//! directory, synced, and renamed into place when the caller says so. A reader never sees
//! a half-written file, and a caller that writes several files can put them all in place
//! only once every one of them was written.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ColumnarError;

/// A file written under a temporary name, put in place by [`StagedFile::commit`]; dropped
/// before that, the temporary file is deleted.
#[derive(Debug)]
pub struct StagedFile {
    tmp_path: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Creates the temporary file for `path` (`.NAME.tmp-PID` beside it), to be written
    /// through the handle returned with it and synced before the commit.
    pub fn create(path: &Path) -> Result<(StagedFile, File), ColumnarError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staged = StagedFile {
            tmp_path: path.with_file_name(format!(".{name}.tmp-{}", std::process::id())),
            path: path.to_path_buf(),
            committed: false,
        };
        let file = File::create(&staged.tmp_path).map_err(|e| staged.io_error(e))?;
        Ok((staged, file))
    }

    /// Writes `bytes` as the whole file for `path`, synced.
    pub fn write(path: &Path, bytes: &[u8]) -> Result<StagedFile, ColumnarError> {
        let (staged, mut file) = StagedFile::create(path)?;
        file.write_all(bytes).map_err(|e| staged.io_error(e))?;
        staged.sync(&file)?;
        Ok(staged)
    }

    /// Writes `bytes` as the whole file at `path`: a new or regular file is staged and
    /// renamed into place at once; anything else (a device such as `/dev/stdout`, a pipe,
    /// a symbolic link) is written through, as renaming over it would replace it.
    pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), ColumnarError> {
        let regular_or_new = std::fs::symlink_metadata(path).map_or(true, |m| m.is_file());
        if regular_or_new {
            return StagedFile::write(path, bytes)?.commit();
        }
        std::fs::write(path, bytes).map_err(|error| ColumnarError::Io {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Syncs `file`, this file's handle, to the disk.
    pub fn sync(&self, file: &File) -> Result<(), ColumnarError> {
        file.sync_all().map_err(|e| self.io_error(e))
    }

    /// The temporary file's path, for errors met while writing it.
    pub fn temporary_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Renames the file into place.
    pub fn commit(mut self) -> Result<(), ColumnarError> {
        std::fs::rename(&self.tmp_path, &self.path).map_err(|error| ColumnarError::Io {
            path: self.path.clone(),
            error,
        })?;
        self.committed = true;
        Ok(())
    }

    /// `error` as an error on the temporary file.
    fn io_error(&self, error: std::io::Error) -> ColumnarError {
        ColumnarError::Io {
            path: self.tmp_path.clone(),
            error,
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing appears at the path before the commit, and nothing is left behind by a
    /// file dropped without one.
    #[test]
    fn a_staged_file_appears_only_when_committed() {
        let dir = std::env::temp_dir().join(format!("wormsign-staged-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.md");
        let staged = StagedFile::write(&path, b"kept").unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read(staged.temporary_path()).unwrap(), b"kept");
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");

        let dropped = StagedFile::write(&dir.join("other.md"), b"dropped").unwrap();
        let tmp = dropped.temporary_path().to_path_buf();
        drop(dropped);
        assert!(!tmp.exists());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["report.md"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A regular file is replaced by a new one (a second name linked to the old file
    /// keeps the old text), and a symbolic link is written through, not replaced.
    #[test]
    fn replacing_renames_over_a_regular_file_and_writes_through_a_link() {
        let dir = std::env::temp_dir().join(format!("wormsign-replace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (file, old_name) = (dir.join("summary.json"), dir.join("old.json"));
        std::fs::write(&file, "old").unwrap();
        std::fs::hard_link(&file, &old_name).unwrap();
        StagedFile::replace(&file, b"new").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        assert_eq!(std::fs::read(&old_name).unwrap(), b"old");

        let link = dir.join("link.json");
        std::os::unix::fs::symlink(&old_name, &link).unwrap();
        StagedFile::replace(&link, b"through").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&old_name).unwrap(), b"through");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
