//! Bad input through real containerds, as ctr passes it on: an unknown or
//! malformed annotation, a missing rootfs, a spec with no process, a broken
//! runtime config. Each gets one clear error and leaves nothing behind; the
//! VM size the annotations and runtime options ask for is what the guest
//! sees. Runs on containerd 1.6 and 2.1 (`containerd_1_6::...`).

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::{Containerd, RUNTIME};
use voidbox_integration::ctr::{ok, text};
use voidbox_integration::on_each_containerd;

fn bad_input_gets_a_clear_error_and_leaves_nothing(v: ContainerdVersion) {
    let ctd = Containerd::start_on(v, "badinput", &[]);
    let fails = |id: &str, extra: &[&str], cmd: &[&str]| -> String {
        let out = ctd.run_command(id, extra, cmd).output().unwrap();
        assert!(!out.status.success(), "{id} should fail");
        text(&out.stderr)
    };
    // Each bad annotation, and the error that names it.
    for (id, annotation, names) in [
        (
            "ann1",
            "io.containerd.voidbox.vm.gpus=1",
            "unknown annotation io.containerd.voidbox.vm.gpus",
        ),
        (
            "ann2",
            "io.containerd.voidbox.vm.cpus=two",
            "io.containerd.voidbox.vm.cpus=\"two\": not a number",
        ),
        (
            "ann3",
            "io.containerd.voidbox.vm.memory=1G",
            "io.containerd.voidbox.vm.memory=\"1G\": not a number",
        ),
    ] {
        let err = fails(id, &["--annotation", annotation], &["true"]);
        assert!(err.contains(names), "{id}: {err}");
    }

    // A rootfs that is not there.
    let mut c = ctd.ctr_command();
    c.args([
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--rootfs",
        "/nonexistent/rootfs",
        "rootfs1",
        "true",
    ]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rootfs /nonexistent/rootfs does not exist"),
        "{}",
        text(&out.stderr)
    );

    // A config.json containerd accepts but no runtime can run: no process.
    let spec = ctd.dir.join("noprocess.json");
    std::fs::write(&spec, r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{}}"#).unwrap();
    let mut c = ctd.ctr_command();
    c.args([
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--config",
        spec.to_str().unwrap(),
        "spec1",
    ]);
    let err = text(&c.output().unwrap().stderr);
    assert!(err.contains("config.json has no process to run"), "{err}");

    // The VM size from annotations is what the guest sees.
    let out = ctd
        .run_command(
            "size1",
            &[
                "--annotation",
                "io.containerd.voidbox.vm.cpus=2",
                "--annotation",
                "io.containerd.voidbox.vm.memory=256",
            ],
            &["sh", "-c", "nproc; grep MemTotal /proc/meminfo"],
        )
        .output()
        .unwrap();
    let out = ok(&out, &ctd);
    assert!(out.starts_with("2\n"), "{out}");
    let kib: u64 = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!((200_000..=262_144).contains(&kib), "256 MiB VM: {out}");

    // Runtime options: a config file named by containerd's runtimeoptions.
    let config = ctd.dir.join("voidbox.toml");
    std::fs::write(&config, "[vm]\ncpus = 2\n").unwrap();
    let out = ctd
        .run_command(
            "opts1",
            &["--runtime-config-path", config.to_str().unwrap()],
            &["nproc"],
        )
        .output()
        .unwrap();
    assert_eq!(ok(&out, &ctd), "2\n", "the runtime config sizes the VM");
    std::fs::write(&config, "[vm]\ncpus = \"two\"\n").unwrap();
    let err = fails("opts2", &["--runtime-config-path", config.to_str().unwrap()], &["true"]);
    assert!(err.contains("runtime config") && err.contains("voidbox.toml"), "{err}");

    for id in ["ann1", "ann2", "ann3", "rootfs1", "spec1", "opts2"] {
        let _ = ctd.ctr(&["container", "delete", id]);
    }
    ctd.assert_clean();
}

on_each_containerd!(bad_input_gets_a_clear_error_and_leaves_nothing);
