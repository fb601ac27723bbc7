//! What the ctr-driven suites share: reading ctr's output, running and
//! removing detached tasks, and running a scenario on every containerd.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::containerd::{Containerd, IMAGE, RUNTIME};

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn ok(out: &Output, ctd: &Containerd) -> String {
    crate::succeeded(out, || format!("--- containerd log ---\n{}", ctd.log_tail()))
}

/// Runs `ctr run -d` (detached, no stdio) and waits until the task runs.
pub fn run_detached(ctd: &Containerd, id: &str, cmd: &[&str]) {
    let mut c = ctd.ctr_command();
    c.args(["run", "-d", "--null-io", "--runtime", RUNTIME, IMAGE, id])
        .args(cmd);
    ok(&c.output().unwrap(), ctd);
    assert!(task_status(ctd, id).contains("RUNNING"), "{}", task_status(ctd, id));
}

pub fn task_status(ctd: &Containerd, id: &str) -> String {
    let out = ctd.ctr(&["task", "ls"]);
    text(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or("")
        .to_string()
}

pub fn remove(ctd: &Containerd, id: &str) {
    let _ = ctd.ctr(&["task", "kill", "-s", "KILL", id]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !task_status(ctd, id).contains("STOPPED") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(&ctd.ctr(&["task", "delete", id]), ctd);
    ok(&ctd.ctr(&["container", "delete", id]), ctd);
}

/// One `#[test]` per scenario and containerd release, in modules named
/// after the release (`containerd_2_1::scenario`): each scenario is a
/// `fn(ContainerdVersion)` in scope.
#[macro_export]
macro_rules! on_each_containerd {
    ($($name:ident),* $(,)?) => {
        mod containerd_1_6 {
            $( #[test] fn $name() { super::$name($crate::clients::ContainerdVersion::V1_6) } )*
        }
        mod containerd_2_1 {
            $( #[test] fn $name() { super::$name($crate::clients::ContainerdVersion::V2_1) } )*
        }
    };
}
