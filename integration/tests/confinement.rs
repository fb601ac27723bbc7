//! The VMM and its helpers are confined (docs/security.md): each process of
//! a running VM is checked in /proc against what its backend says it is
//! held to (`Backend::confinement`): whose privileges, which seccomp state,
//! which capabilities. And the VM's state directory is private.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use voidbox_integration::{test_backend, vm_config};
use voidbox_shim::guest::GuestClient;
use voidbox_shim::vm::confine::VmmUser;
use voidbox_shim::vm::{Confinement, MicroVm, RunsAs, Share, VmExit};

const GRACE: Duration = Duration::from_secs(10);

/// The fields of /proc/<pid>/status the checks read.
#[derive(Debug)]
struct Status {
    pid: i32,
    ppid: i32,
    uid: Vec<u32>,
    cap_eff: u64,
    seccomp: u32,
    no_new_privs: bool,
}

fn status(pid: i32) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let fields: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    let num = |k: &str| fields[k].parse::<u32>().unwrap_or_else(|e| panic!("{k}: {e}"));
    Status {
        pid,
        ppid: num("PPid") as i32,
        uid: fields["Uid"].split_whitespace().map(|u| u.parse().unwrap()).collect(),
        cap_eff: u64::from_str_radix(fields["CapEff"], 16).unwrap(),
        seccomp: num("Seccomp"),
        no_new_privs: num("NoNewPrivs") == 1,
    }
}

/// Each process of `program` that does the work: a process forked by one
/// of its own kind (virtiofsd's sandboxed child) stands for its parent,
/// which only waits for it.
fn workers<'a>(program: &str, running: &'a [(i32, String, Status)]) -> Vec<&'a Status> {
    let mine: Vec<&(i32, String, Status)> = running.iter().filter(|(_, cmd, _)| cmd.contains(program)).collect();
    mine.iter()
        .filter(|(pid, _, _)| !mine.iter().any(|(_, _, s)| s.ppid == *pid))
        .map(|(_, _, s)| s)
        .collect()
}

fn check(expected: &Confinement, s: &Status, root_caps: u64, vmm_uid: Option<u32>) -> Result<(), String> {
    let what = format!("{} (pid {}): {s:?}", expected.program, s.pid);
    let seccomp = if expected.seccomp { 2 } else { 0 };
    if s.seccomp != seccomp {
        return Err(format!("{what}: Seccomp {} where {seccomp} was expected", s.seccomp));
    }
    match expected.runs_as {
        RunsAs::VmmUser => {
            let uid = vmm_uid.expect("the suite runs as root, with the VMM user present");
            if s.uid.iter().any(|&u| u != uid) {
                return Err(format!("{what}: not all of its uids are the VMM user's {uid}"));
            }
            if s.cap_eff != 0 || !s.no_new_privs {
                return Err(format!(
                    "{what}: an unprivileged process with capabilities or without no_new_privs"
                ));
            }
        }
        RunsAs::Root => {
            if s.uid[1] != 0 {
                return Err(format!("{what}: expected to keep root"));
            }
            if expected.reduced_caps && s.cap_eff == root_caps {
                return Err(format!("{what}: still holds every capability ({:#x})", s.cap_eff));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vm_process_runs_as_its_backend_says() {
    let me = status(std::process::id() as i32);
    assert_eq!(me.uid[1], 0, "the suite runs as root");
    let vmm_uid = VmmUser::resolve().expect("the VMM user exists").map(|u| u.uid.as_raw());

    let host_dir = std::env::temp_dir().join(format!("voidbox-test-confine-{}", std::process::id()));
    std::fs::create_dir_all(&host_dir).unwrap();
    let mut config = vm_config("confine");
    config.shares.push(Share {
        tag: "s".into(),
        host_path: host_dir.clone(),
    });
    let state = config.state_dir.clone();
    let expected = test_backend().confinement(&config);
    let vm = MicroVm::start(test_backend().as_ref(), config).await.expect("start VM");
    let guest = GuestClient::connect(&vm).await.expect("vminitd dials in");

    let running: Vec<(i32, String, Status)> = voidbox_integration::pids_mentioning(&state)
        .into_iter()
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            Some((pid, cmd, status(pid)))
        })
        .collect();
    for (_, cmd, s) in &running {
        let program = cmd.split_whitespace().next().unwrap_or_default();
        println!(
            "{program}: pid {} ppid {} uid {:?} CapEff {:#x} Seccomp {} NoNewPrivs {}",
            s.pid, s.ppid, s.uid, s.cap_eff, s.seccomp, s.no_new_privs
        );
    }
    let mut failures = Vec::new();
    for want in &expected {
        let workers = workers(want.program, &running);
        assert!(!workers.is_empty(), "{} is not running: {running:?}", want.program);
        for s in workers {
            if let Err(e) = check(want, s, me.cap_eff, vmm_uid) {
                failures.push(e);
            }
        }
    }

    // The state directory is the VMM user's alone; its sockets are 0600.
    let dir = std::fs::metadata(&state).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700, "state directory mode");
    if let Some(uid) = vmm_uid {
        assert_eq!(dir.uid(), uid, "state directory owner");
    }
    for entry in std::fs::read_dir(&state).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.file_type().is_socket() && meta.mode() & 0o077 != 0 {
            failures.push(format!("{}: mode {:o}", entry.path().display(), meta.mode() & 0o777));
        }
    }

    assert_eq!(guest.power_off(&vm, GRACE).await, VmExit::Shutdown);
    std::fs::remove_dir_all(&host_dir).unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(!Path::new(&state).exists());
}
