//! A scenario written as a dataset directory: `capture.pcap`, `labels.json`,
//! `flow_labels.csv` and optionally `netflow.pcap`, each through a temporary name renamed
//! into place, so a directory never holds half a dataset's file.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::Path;

use crate::export::{write_export, ExportSummary, Meter, NetflowVersion};
use crate::{generate_labelled, Output, SynthConfig};

/// What [`write_dataset`] wrote.
#[derive(Debug)]
pub struct Dataset {
    /// The capture's counts and ground truth.
    pub output: Output,
    /// The NetFlow export's counts, when one was asked for.
    pub exported: Option<ExportSummary>,
}

/// Writes `path` through a temporary name renamed into place; an error names the file.
pub(crate) fn atomic(path: &Path, write: impl FnOnce(File) -> io::Result<()>) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = File::create(&tmp)
        .and_then(write)
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

/// Generates `cfg` into the directory `dir` (created if missing); with `netflow`, also
/// the same traffic as NetFlow export datagrams in `netflow.pcap` (one record per
/// direction of each flow, idle 15 s and active 60 s timeouts).
pub fn write_dataset(
    dir: &Path,
    cfg: &SynthConfig,
    netflow: Option<NetflowVersion>,
) -> io::Result<Dataset> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
    let mut output = None;
    let mut meter = netflow.map(|_| Meter::new());
    atomic(&dir.join("capture.pcap"), |f| {
        atomic(&dir.join("flow_labels.csv"), |labels| {
            let out = generate_labelled(cfg, &f, labels, |ts, frame| {
                if let Some(m) = meter.as_mut() {
                    m.observe(ts, frame);
                }
            })?;
            output = Some(out);
            Ok(())
        })
    })?;
    let mut exported = None;
    if let (Some(version), Some(meter)) = (netflow, meter) {
        let records = meter.finish();
        atomic(&dir.join("netflow.pcap"), |f| {
            exported = Some(write_export(version, &records, f)?);
            Ok(())
        })?;
    }
    let output = output.ok_or_else(|| io::Error::other("the generator produced nothing"))?;
    atomic(&dir.join("labels.json"), |mut f| {
        f.write_all(output.labels.to_json().as_bytes())
    })?;
    Ok(Dataset { output, exported })
}
