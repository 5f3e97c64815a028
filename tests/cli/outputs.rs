//! How output files are written: a summary file replaced only when complete, and outputs
//! that cannot be written failing the run with one error line naming the path and the
//! system's reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap.gz")
}

/// The reason the system gives for creating anything under a regular file.
fn reason_under(file: &Path) -> String {
    let error = std::fs::create_dir(file.join("x")).expect_err("a directory under a file");
    error.to_string()
}

/// Output tables under a regular file, and a summary file there: exit 2, and a single
/// `wormsign: error:` line that names the file and gives the reason once (an error
/// that printed its cause again through its source said it twice).
#[test]
fn an_unwritable_output_fails_with_one_line_naming_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").expect("file");
    let reason = reason_under(&file);
    let out_dir = tmp.path().join("out");
    let runs: [(&str, Vec<PathBuf>); 2] = [
        ("tables", vec!["--out".into(), file.join("out")]),
        (
            "summary",
            vec![
                "--out".into(),
                out_dir,
                "--summary-json".into(),
                file.join("summary.json"),
            ],
        ),
    ];
    for (what, args) in runs {
        let run = Command::new(env!("CARGO_BIN_EXE_wormsign"))
            .arg("analyze")
            .arg(sample())
            .args(&args)
            .arg("-q")
            .output()
            .expect("running wormsign");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{what}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {stderr}");
        assert!(
            lines[0].starts_with("wormsign: error: "),
            "{what}: {stderr}"
        );
        assert!(
            lines[0].contains(&*file.to_string_lossy()),
            "{what}: {stderr}"
        );
        assert_eq!(lines[0].matches(&reason).count(), 1, "{what}: {stderr}");
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("temp dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 2, "only the file and the tables: {left:?}");
}

/// Runs `wormsign analyze` of the sample with `args`; its output.
fn analyze(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .arg("analyze")
        .arg(sample())
        .args(args)
        .arg("-q")
        .output()
        .expect("running wormsign")
}

/// A summary file that exists is replaced by a new file renamed over it (another name
/// linked to the old file still reads the old text, which writing in place would have
/// overwritten), and `/dev/stdout` is written through (renaming over it would fail).
#[test]
fn a_summary_file_is_replaced_whole_and_a_device_written_through() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let summary = tmp.path().join("summary.json");
    let old_link = tmp.path().join("old.json");
    std::fs::write(&summary, "old\n").expect("old summary");
    std::fs::hard_link(&summary, &old_link).expect("hard link");
    let out = tmp.path().join("out");
    let run = analyze(&[
        "--out".as_ref(),
        out.as_os_str(),
        "--summary-json".as_ref(),
        summary.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&old_link).expect("old link"),
        "old\n"
    );
    let text = std::fs::read_to_string(&summary).expect("summary");
    let json: serde_json::Value = serde_json::from_str(&text).expect("summary JSON");
    assert!(json["packets"].as_u64().is_some_and(|n| n > 0), "{text}");

    let run = analyze(&[
        "--out".as_ref(),
        tmp.path().join("out2").as_os_str(),
        "--summary-json".as_ref(),
        "/dev/stdout".as_ref(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).expect("summary on stdout");
    assert_eq!(
        json["packets"],
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["packets"]
    );
}
