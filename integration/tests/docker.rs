//! Docker Engine 28 over containerd 2.1, driven with the docker CLI as a
//! user would: `docker run --runtime voidbox ...` and what follows from it.

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use voidbox_integration::docker::Docker;
use voidbox_integration::wait_until;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: &Output, docker: &Docker) -> String {
    voidbox_integration::succeeded(out, || docker.log_tail())
}

#[test]
fn run_rm_exit_codes_stdin_memory_limit_and_large_output() {
    let d = Docker::start("docker-run");
    let out = d.run_command(&["--rm"], &["echo", "hi"]).output().unwrap();
    assert_eq!(ok(&out, &d), "hi\n");
    // The fully qualified runtime name works without daemon.json too.
    let out = d
        .command()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--runtime",
            "io.containerd.voidbox.v2",
        ])
        .args([voidbox_integration::docker::IMAGE, "echo", "qualified"])
        .output()
        .unwrap();
    assert_eq!(ok(&out, &d), "qualified\n");

    let out = d.run_command(&["--rm"], &["sh", "-c", "exit 7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));

    // -i: stdin reaches the container, and its EOF too.
    let mut child = d
        .run_command(&["--rm", "-i"], &["sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ok(&out, &d), format!("{input}done\n"));

    // -m: the limit is the container's own memory.max in the guest.
    let out = d
        .run_command(&["--rm", "-m", "64m"], &["cat", "/sys/fs/cgroup/memory.max"])
        .output()
        .unwrap();
    assert_eq!(ok(&out, &d), "67108864\n");

    // Large output, byte-exact through docker's attach.
    let out = d.run_command(&["--rm"], &["seq", "1", "500000"]).output().unwrap();
    let want: String = (1..=500_000).map(|i| format!("{i}\n")).collect();
    let got = ok(&out, &d);
    assert!(got == want, "{} of {} bytes arrived intact", got.len(), want.len());
    d.assert_clean();
}

#[test]
fn detached_logs_exec_stop_and_kill() {
    let d = Docker::start("docker-life");
    let id = ok(
        &d.run_command(
            &["-d", "--name", "web"],
            &["sh", "-c", "echo started; echo oops >&2; sleep 300"],
        )
        .output()
        .unwrap(),
        &d,
    );
    assert_eq!(id.trim().len(), 64, "docker run -d prints the id: {id}");
    let logs = || d.docker(&["logs", "web"]);
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        text(&logs().stdout).contains("started")
    });
    let out = logs();
    assert_eq!(text(&out.stdout), "started\n");
    assert_eq!(text(&out.stderr), "oops\n");

    let out = d.docker(&["exec", "web", "sh", "-c", "echo from exec; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from exec\n");

    // stop: TERM, which sleep as PID 1 ignores, then KILL after the timeout.
    let began = Instant::now();
    ok(&d.docker(&["stop", "-t", "2", "web"]), &d);
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "KILL came only after the timeout"
    );
    let code = ok(&d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "web"]), &d);
    assert_eq!(code.trim(), "137");
    ok(&d.docker(&["rm", "web"]), &d);

    // stop of a container that handles TERM: its own exit status. The stop
    // waits until the trap is set: `docker run -d` returns once the process
    // runs, and a TERM before that finds sh as PID 1 ignoring it.
    ok(
        &d.run_command(
            &["-d", "--name", "polite"],
            &[
                "sh",
                "-c",
                "trap 'exit 3' TERM; echo trapped; while true; do sleep 0.1; done",
            ],
        )
        .output()
        .unwrap(),
        &d,
    );
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        text(&d.docker(&["logs", "polite"]).stdout).contains("trapped")
    });
    ok(&d.docker(&["stop", "-t", "30", "polite"]), &d);
    let code = ok(&d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "polite"]), &d);
    assert_eq!(code.trim(), "3");
    ok(&d.docker(&["rm", "polite"]), &d);

    // kill: SIGKILL at once.
    ok(
        &d.run_command(&["-d", "--name", "victim"], &["sleep", "300"])
            .output()
            .unwrap(),
        &d,
    );
    ok(&d.docker(&["kill", "victim"]), &d);
    let state = || {
        ok(
            &d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "victim"]),
            &d,
        )
    };
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        state().starts_with("exited")
    });
    assert_eq!(state().trim(), "exited 137");
    ok(&d.docker(&["rm", "victim"]), &d);
    d.assert_clean();
}
