//! Detection in parts, for `wormsign.spark`: tag the usable flows with their parts, run
//! the parts a task was dealt, and merge every part's findings on the driver. Batches cross
//! as Arrow (`pyarrow.RecordBatch`), findings as bytes.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_pyarrow::PyArrowType;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use wormsign_engine::{spill_warnings, write_detection, Error, RunEvents};

use crate::{put_detection, py_err, DetectOptions};

/// The flow files of the runs stored in `dirs`.
#[pyfunction]
fn flow_files(dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    wormsign_engine::flow_files(&dirs)
}

/// The columns of the flows table detection reads (Spark reads only these).
#[pyfunction]
fn detection_flow_columns() -> Vec<&'static str> {
    wormsign_columnar::detection_flow_columns()
}

/// The parts of a detection in a Spark task: tags the usable flows with their parts
/// (before the shuffle), or runs the parts whose flows the task was dealt.
#[pyclass(module = "wormsign._native")]
struct PartRunner {
    runner: Option<wormsign_engine::PartRunner>,
}

#[pymethods]
impl PartRunner {
    /// A runner for a detection in `parts` parts over the runs stored in `dirs`, with
    /// detection `options`. It reads the runs' DNS, ARP, session and naming tables, or
    /// with `tagging` only the DNS messages naming C&C domains, all `tag` needs.
    #[new]
    #[pyo3(signature = (parts, dirs, options, tagging=false))]
    fn new(
        py: Python<'_>,
        parts: usize,
        dirs: Vec<PathBuf>,
        options: DetectOptions,
        tagging: bool,
    ) -> PyResult<Self> {
        let config = options.config().map_err(py_err)?;
        let events = py
            .detach(|| match tagging {
                true => RunEvents::read_dns(&dirs, &config),
                false => RunEvents::read(&dirs, &config),
            })
            .map_err(py_err)?;
        let runner = wormsign_engine::PartRunner::new(config, Arc::new(events), parts);
        Ok(PartRunner {
            runner: Some(runner),
        })
    }

    /// The usable flows of a batch of the flows table (in any Arrow layout Spark gives
    /// it) with a `part` column: each once for the part owning its source, once more
    /// for the part owning its responder when that is another.
    fn tag(
        &self,
        py: Python<'_>,
        batch: PyArrowType<RecordBatch>,
    ) -> PyResult<PyArrowType<RecordBatch>> {
        let runner = self.runner.as_ref().ok_or_else(finished)?;
        let tagged = py.detach(|| runner.tag(&batch.0)).map_err(py_err)?;
        Ok(PyArrowType(tagged))
    }

    /// Takes one tagged batch.
    fn push(&mut self, py: Python<'_>, batch: PyArrowType<RecordBatch>) -> PyResult<()> {
        let runner = self.runner.as_mut().ok_or_else(finished)?;
        py.detach(|| runner.push(&batch.0)).map_err(py_err)
    }

    /// Each part's findings, as `(part, bytes)` pairs.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<(usize, Bound<'py, PyBytes>)>> {
        let runner = self.runner.take().ok_or_else(finished)?;
        let found = py.detach(|| runner.finish());
        Ok(found
            .into_iter()
            .map(|(part, bytes)| (part, PyBytes::new(py, &bytes)))
            .collect())
    }
}

fn finished() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err("PartRunner.finish() was called already")
}

/// The detection in `parts` parts finished from the parts' findings, over the runs
/// stored in `dirs` holding `flows` flows; with `out`, the detection files are written
/// there too.
#[pyfunction]
#[pyo3(signature = (found, dirs, options, parts, flows, out=None))]
fn merge_parts(
    py: Python<'_>,
    found: Vec<Vec<u8>>,
    dirs: Vec<PathBuf>,
    options: DetectOptions,
    parts: usize,
    flows: u64,
    out: Option<PathBuf>,
) -> PyResult<Py<PyDict>> {
    let config = options.config().map_err(py_err)?;
    let (d, warnings) = py
        .detach(|| -> Result<_, Error> {
            let events = RunEvents::read(&dirs, &config)?;
            let d = wormsign_engine::merge_parts(&config, &events, &found, parts, flows)?;
            if let Some(out) = &out {
                let metadata = wormsign_engine::output_metadata(None, &config);
                write_detection(out, &d, &metadata)?;
            }
            let mut warnings = events.warnings;
            warnings.extend(spill_warnings(&d));
            Ok((d, warnings))
        })
        .map_err(py_err)?;
    let dict = PyDict::new(py);
    put_detection(py, &dict, &d)?;
    dict.set_item("detect_warnings", warnings)?;
    Ok(dict.unbind())
}

/// Adds this module's functions and class to `_native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(flow_files, m)?)?;
    m.add_function(wrap_pyfunction!(detection_flow_columns, m)?)?;
    m.add_function(wrap_pyfunction!(merge_parts, m)?)?;
    m.add_class::<PartRunner>()?;
    Ok(())
}
