//! `voidbox-trace show` and `make jaeger-gantt` on a recorded trace: the
//! waterfall and the chart are compared with committed golden files.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_waterfall_of_the_latest_trace_matches_its_golden_file() {
    let file = fixture(RECORDED);
    let out = voidbox_trace(&["show", "--file", file.to_str().unwrap(), "--waterfall"]);
    let text = stdout_ok(&out, "show --file --waterfall");
    // The file holds two traces; the one that ended last is shown: Create's,
    // whose `Container` span lasts as long as the container.
    golden("create.waterfall.txt", &text);
    // What a reader checks in it: all three sides, under containerd's
    // request.
    assert!(text.starts_with("containerd.services.tasks.v1.Tasks/Create "), "{text}");
    for (side, tag) in [("containerd", " ctd "), ("guest", " vm  ")] {
        assert!(text.lines().any(|l| l.contains(tag)), "no {side} line in:\n{text}");
    }
    let shim = text
        .lines()
        .find(|l| l.trim_start().starts_with("VMBoot "))
        .expect("the shim's VMBoot");
    assert!(!shim.contains(" ctd ") && !shim.contains(" vm  "), "{shim}");
}

#[test]
fn a_trace_picked_by_id_is_the_one_shown() {
    let file = fixture(RECORDED);
    let out = voidbox_trace(&[
        "show",
        "--file",
        file.to_str().unwrap(),
        "--trace",
        START_TRACE,
        "--waterfall",
    ]);
    let text = stdout_ok(&out, "show --trace");
    golden("start.waterfall.txt", &text);
    assert!(text.starts_with("containerd.services.tasks.v1.Tasks/Start "), "{text}");
}

#[test]
fn a_trace_id_that_is_not_in_the_file_is_an_error() {
    let file = fixture(RECORDED);
    let out = voidbox_trace(&["show", "--file", file.to_str().unwrap(), "--trace", "00ff"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "voidbox-trace: no spans of trace 00ff\n"
    );
}

/// What a developer types after `make test-tracing`; cargo is the one
/// running this test, and the target directory is the test's own.
#[test]
fn make_jaeger_gantt_prints_the_chart_then_the_waterfall() {
    let file = fixture(RECORDED);
    let mut make = Command::new("make");
    // As a developer's shell has it: without what cargo sets for this test.
    // Build scripts rerun when such a variable changes (ring's reads
    // CARGO_PKG_NAME, say), so the nested build would rebuild ring and all
    // above it, then the next outer build again.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key.as_str(),
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            make.env_remove(key);
        }
    }
    let out = make
        .args(["-s", "--no-print-directory", "-C"])
        .arg(hack_dir().parent().unwrap())
        .arg("jaeger-gantt")
        .arg(format!("TRACE_FILE={}", file.display()))
        .arg(format!("TRACE_ID={CREATE_TRACE}"))
        .output()
        .expect("run make");
    let text = stdout_ok(&out, "make jaeger-gantt");
    golden("create.gantt.md", &text);
    // The same as the tool's own output, chart first.
    let direct = voidbox_trace(&["show", "--file", file.to_str().unwrap(), "--trace", CREATE_TRACE]);
    assert_eq!(text, stdout_ok(&direct, "show --file"));
    assert!(text.starts_with("```mermaid\ngantt\n"), "{text}");
}
