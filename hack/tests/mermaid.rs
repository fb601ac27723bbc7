//! voidbox-trace's Mermaid chart, rendered to SVG by mermaid-cli (`mmdc`)
//! in Debian's Chromium: what GitHub or a Markdown viewer would draw. A chart
//! Mermaid cannot parse fails here. `make deps` installs both
//! (hack/install-deps.sh, hack/fetch-mermaid.sh); hack/with-assets.sh puts
//! mmdc in VOIDBOX_MMDC.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

fn mmdc() -> PathBuf {
    if let Some(p) = std::env::var_os("VOIDBOX_MMDC") {
        return p.into();
    }
    // Outside hack/with-assets.sh: the cached one (installed if missing).
    let out = Command::new(hack_dir().join("fetch-mermaid.sh"))
        .output()
        .expect("run hack/fetch-mermaid.sh");
    assert!(
        out.status.success(),
        "hack/fetch-mermaid.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().into()
}

/// Renders `chart` to SVG; the SVG, or mmdc's output on failure.
fn render(chart: &str, dir: &Path) -> Result<String, Output> {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} missing: run `make deps` (it installs chromium)"
    );
    let input = dir.join("chart.mmd");
    let svg = dir.join("chart.svg");
    let _ = std::fs::remove_file(&svg);
    std::fs::write(&input, chart).unwrap();
    // Chromium refuses to run as root with its sandbox on; the chart is our
    // own, so the sandbox is dropped only then.
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let config = dir.join("puppeteer.json");
    std::fs::write(&config, if root { r#"{"args":["--no-sandbox"]}"# } else { "{}" }).unwrap();
    let out = Command::new(mmdc())
        .env("PUPPETEER_EXECUTABLE_PATH", CHROMIUM)
        .arg("--puppeteerConfigFile")
        .arg(&config)
        .arg("--quiet")
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&svg)
        .output()
        .expect("run mmdc");
    if !out.status.success() {
        return Err(out);
    }
    Ok(std::fs::read_to_string(&svg).expect("mmdc succeeded but wrote no SVG"))
}

/// A directory of the test's own, removed when the test ends, failed or not.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("voidbox-mermaid-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn chart_of(trace: &str) -> String {
    let file = fixture(RECORDED);
    let out = voidbox_trace(&["show", "--file", file.to_str().unwrap(), "--trace", trace, "--mermaid"]);
    mermaid_of(&stdout_ok(&out, "show --mermaid"))
}

#[test]
fn the_recorded_traces_chart_renders_one_bar_per_span() {
    let scratch = scratch("ok");
    let dir = &scratch.0;
    let chart = chart_of(CREATE_TRACE);
    let svg = render(&chart, dir).unwrap_or_else(|out| {
        panic!(
            "mmdc refused the chart ({}):\n{}\n{}\nchart:\n{chart}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.contains(r#"aria-roledescription="gantt""#), "not a gantt chart");
    // One task bar per task line of the chart (27 spans in the Create trace),
    // each labelled with its span's name.
    let tasks: Vec<&str> = chart.lines().filter(|l| l.contains(" :s")).collect();
    assert_eq!(tasks.len(), 27, "{chart}");
    // mmdc names the SVG `my-svg`, and each bar after its task's id.
    let bars = svg.matches("<rect id=\"my-svg-s").count();
    assert_eq!(bars, tasks.len(), "bars in the SVG");
    for n in 1..=tasks.len() {
        assert!(
            svg.contains(&format!("<rect id=\"my-svg-s{n}\"")),
            "no bar for task s{n}"
        );
    }
    for name in ["VMBoot", "ClockSync", "containerd.services.tasks.v1.Tasks/Create"] {
        assert!(svg.contains(name), "{name} not drawn");
    }
}

/// The check above can fail: a line break inside a label (a span name with
/// one, before voidbox-trace flattened them) is a parse error.
#[test]
fn a_corrupted_chart_fails_to_render() {
    let scratch = scratch("bad");
    let dir = &scratch.0;
    let chart = chart_of(START_TRACE);
    assert!(render(&chart, dir).is_ok(), "the uncorrupted chart must render");
    let corrupted = chart.replacen(". . Start (shim)", ". . Start\n    (shim)", 1);
    assert_ne!(corrupted, chart);
    let out = render(&corrupted, dir).expect_err("mmdc accepted a corrupted chart");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Parse error"), "{err}");
}

/// Span names are whatever the instrumented code (or the guest) chose: ones
/// with a colon, a line break, Markdown or Mermaid's comment marker still
/// draw one bar each.
#[test]
fn span_names_mermaid_would_misread_still_draw_every_bar() {
    let scratch = scratch("names");
    let dir = &scratch.0;
    let recorded = std::fs::read_to_string(fixture(RECORDED)).unwrap();
    let odd = recorded
        .replace(r#""name":"VMBoot""#, r#""name":"VM: boot\nphase""#)
        .replace(r#""name":"ClockSync""#, r#""name":"clock; sync # %% <b>x</b>""#)
        .replace(r#""name":"Container""#, r#""name":"Container\r\n\tlife: 1""#);
    assert_eq!(odd.matches("VM: boot").count(), 1, "the fixture changed");
    let file = dir.join("odd.jsonl");
    std::fs::write(&file, odd).unwrap();
    let out = voidbox_trace(&[
        "show",
        "--file",
        file.to_str().unwrap(),
        "--trace",
        CREATE_TRACE,
        "--mermaid",
    ]);
    let chart = mermaid_of(&stdout_ok(&out, "show --mermaid"));
    let svg = render(&chart, dir).unwrap_or_else(|out| {
        panic!(
            "mmdc refused the chart: {}\nchart:\n{chart}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(svg.matches("<rect id=\"my-svg-s").count(), 27, "bars; chart:\n{chart}");
    assert!(svg.contains("VM  boot phase"), "the renamed span's label");
}
