//! What a container sees of its VM and where its output goes, through real
//! containerds and ctr: host directories shared in, its own cgroup2 with its
//! limits, and containerd's log URIs (`file://`, `binary://`) handled as its runc shim handles them.

use std::path::Path;
use std::time::Duration;

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::ctr::{ok, text};
use voidbox_integration::on_each_containerd;

/// The JVM, Go and .NET read their limits from the container's own cgroup2.
fn a_container_sees_its_own_cgroup2_and_memory_limit(v: ContainerdVersion) {
    let ctd = Containerd::start_on(v, "cgroup", &[]);
    let out = ctd
        .run_command(
            "cg1",
            &["--memory-limit", "67108864"],
            &[
                "sh",
                "-c",
                "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; grep ' /sys/fs/cgroup ' /proc/mounts",
            ],
        )
        .output()
        .unwrap();
    let out = ok(&out, &ctd);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"0::/"),
        "a cgroup namespace rooted at the container ({v}): {out}"
    );
    assert_eq!(lines.get(1), Some(&"67108864"), "memory.max is the limit ({v}): {out}");
    let mount: Vec<&str> = lines.get(2).unwrap_or(&"").split_whitespace().collect();
    assert_eq!(mount.get(2), Some(&"cgroup2"), "cgroup2 on /sys/fs/cgroup ({v}): {out}");
    assert!(
        mount.get(3).is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "read-only for an unprivileged container ({v}): {out}"
    );
    ctd.assert_clean();
}

/// `file://PATH`: stdout and stderr appended to PATH, which is created with
/// its directory.
fn file_log_uri_appends_both_streams(v: ContainerdVersion) {
    let ctd = Containerd::start_on(v, "logfile", &[]);
    let log = ctd.dir.join("logs/sub/c.log");
    let uri = format!("file://{}", log.display());
    for (i, id) in ["file1", "file2"].iter().enumerate() {
        let cmd = format!("echo out{i}; echo err{i} >&2; exit {}", 3 + i);
        let out = ctd
            .run_command(id, &["--log-uri", &uri], &["sh", "-c", &cmd])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3 + i as i32), "{v}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "", "{v}: output goes to the file, not to ctr");
    }
    let mut got: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{v}: {}: {e}", log.display()))
        .lines()
        .map(String::from)
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["err0", "err1", "out0", "out1"],
        "{v}: both runs, both streams, appended"
    );
    ctd.assert_clean();
}

/// A logger as nerdctl's behaves: it opens its files, closes fd 5 to say it
/// is ready, copies fd 3 and fd 4 to EOF, and exits.
fn write_logger(dir: &Path) -> std::path::PathBuf {
    let logger = dir.join("logger.sh");
    std::fs::write(
        &logger,
        r#"#!/bin/sh
# $1 is the URI's key ("dir"), $2 its value.
out=$2
echo "$CONTAINER_NAMESPACE/$CONTAINER_ID $#" > "$out/env"
cat <&3 > "$out/stdout" 5>&- &
cat <&4 > "$out/stderr" 5>&- &
exec 5>&-
wait
echo exited > "$out/exited"
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    logger
}

/// `binary://PATH?key=value`: the logger gets stdout on fd 3, stderr on
/// fd 4, the container's id and namespace, its URI arguments, and EOF when
/// the container is done; nothing is lost and the logger is gone after.
fn binary_log_uri_feeds_a_logging_program(v: ContainerdVersion) {
    let ctd = Containerd::start_on(v, "logbin", &[]);
    let out_dir = ctd.dir.join("logged");
    std::fs::create_dir_all(&out_dir).unwrap();
    let logger = write_logger(&ctd.dir);
    let uri = format!("binary://{}?dir={}", logger.display(), out_dir.display());
    // Enough output to need backpressure through the logger's pipes.
    let cmd = "seq 1 100000; echo to-stderr >&2";
    let out = ctd
        .run_command("bin1", &["--log-uri", &uri], &["sh", "-c", cmd])
        .output()
        .unwrap();
    ok(&out, &ctd);
    let exited = out_dir.join("exited");
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        exited.exists()
    });
    assert!(gone, "{v}: the logger got EOF and exited");
    let stdout = std::fs::read_to_string(out_dir.join("stdout")).unwrap();
    let want: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert!(
        stdout == want,
        "{v}: stdout byte-exact ({} of {} bytes)",
        stdout.len(),
        want.len()
    );
    assert_eq!(std::fs::read_to_string(out_dir.join("stderr")).unwrap(), "to-stderr\n");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("env")).unwrap(),
        format!("{}/bin1 2\n", voidbox_integration::containerd::NAMESPACE),
        "{v}: CONTAINER_NAMESPACE/CONTAINER_ID and the two URI arguments"
    );
    assert_eq!(
        voidbox_integration::processes_mentioning(&logger),
        Vec::<String>::new(),
        "{v}: no logger left"
    );

    // A logger that is not there: a clear error, and no VM left behind.
    let missing = ctd.dir.join("no-such-logger");
    let uri = format!("binary://{}", missing.display());
    let out = ctd
        .run_command("bin2", &["--log-uri", &uri], &["true"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{v}: a missing logger fails the container");
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("logging binary {}: start", missing.display())),
        "{v}: {err}"
    );
    let _ = ctd.ctr(&["container", "delete", "bin2"]);
    ctd.assert_clean();
}

fn host_directories_are_shared_into_the_vm_read_write_or_read_only(v: ContainerdVersion) {
    let ctd = Containerd::start_on(v, "volume", &[]);
    let data = ctd.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in"), "from the host\n").unwrap();
    let rw = format!("type=bind,src={},dst=/data,options=rbind:rw", data.display());
    let out = ctd
        .run_command(
            "vol-rw",
            &["--mount", &rw],
            &["sh", "-c", "cat /data/in && echo from-vm > /data/out"],
        )
        .output()
        .unwrap();
    assert_eq!(ok(&out, &ctd), "from the host\n");
    assert_eq!(std::fs::read_to_string(data.join("out")).unwrap(), "from-vm\n");
    let ro = format!("type=bind,src={},dst=/data,options=rbind:ro", data.display());
    let out = ctd
        .run_command("vol-ro", &["--mount", &ro], &["sh", "-c", "echo x > /data/out"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a read-only volume refused the write");
    assert!(
        text(&out.stdout).contains("Read-only file system") || text(&out.stderr).contains("Read-only"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let missing = format!(
        "type=bind,src={},dst=/data,options=rbind",
        ctd.dir.join("nope").display()
    );
    let out = ctd
        .run_command("vol-missing", &["--mount", &missing], &["true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("volume") && text(&out.stderr).contains("nope"),
        "{}",
        text(&out.stderr)
    );
    ctd.assert_clean();
}

on_each_containerd!(
    host_directories_are_shared_into_the_vm_read_write_or_read_only,
    a_container_sees_its_own_cgroup2_and_memory_limit,
    file_log_uri_appends_both_streams,
    binary_log_uri_feeds_a_logging_program,
);
