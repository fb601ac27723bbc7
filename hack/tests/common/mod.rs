//! What the voidbox-trace tests share: the recorded trace, the binary, and
//! golden files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A real run, recorded from containerd 2.1 driving the shim (`make
/// test-tracing`'s voidbox-trace-containerd.json), trimmed to two of its
/// traces: a container's Create (27 spans from containerd, the shim and the
/// guest; the latest to end) and its Start (9 spans).
pub const RECORDED: &str = "tests/fixtures/containerd-run.otlp.jsonl";
pub const CREATE_TRACE: &str = "75ddce4551cb35bd4b2d93a6436c34cf";
pub const START_TRACE: &str = "bf381883376ab155ac302fd3730bdb77";

/// Set to regenerate the golden files from the current output (then review
/// the diff): `VOIDBOX_UPDATE_GOLDEN=1 cargo test -p voidbox-hack`.
const UPDATE: &str = "VOIDBOX_UPDATE_GOLDEN";

pub fn hack_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    hack_dir().join(rel)
}

/// voidbox-trace with `args`; its stderr is shown on failure.
pub fn voidbox_trace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_voidbox-trace"))
        .args(args)
        .output()
        .expect("run voidbox-trace")
}

pub fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("voidbox-trace prints UTF-8")
}

/// `actual` must equal the committed `tests/golden/NAME` byte for byte.
pub fn golden(name: &str, actual: &str) {
    let path = hack_dir().join("tests/golden").join(name);
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e} ({UPDATE}=1 writes it)", path.display()));
    if want != actual {
        let first = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(actual.lines().count()));
        panic!(
            "output differs from {} from line {}:\n  golden: {:?}\n  actual: {:?}\n\
             whole output:\n{actual}\n(if the change is intended: {UPDATE}=1, then review the diff)",
            path.display(),
            first + 1,
            want.lines().nth(first),
            actual.lines().nth(first),
        );
    }
}

/// The Mermaid chart in voidbox-trace's output, without its Markdown fence.
pub fn mermaid_of(markdown: &str) -> String {
    let body = markdown
        .split("```mermaid\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("no ```mermaid block in:\n{markdown}"));
    body.to_string()
}
