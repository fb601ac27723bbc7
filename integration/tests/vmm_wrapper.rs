//! The VMM started through a wrapper that runs it as a child of its own, as
//! `strace -f`, `perf record` or a script without `exec` do (the backend's
//! `VOIDBOX_*` override pointing at the wrapper): when the container ends,
//! the shim stops the VMM the wrapper started too, and nothing is left.

use std::os::unix::fs::PermissionsExt;

use voidbox_integration::clients::ContainerdVersion;
use voidbox_integration::containerd::Containerd;
use voidbox_integration::ctr::ok;
use voidbox_integration::{on_each_containerd, test_backend};

fn a_vmm_run_by_a_wrapper_goes_with_its_container(v: ContainerdVersion) {
    let vmm = test_backend().vmm();
    let real = vmm.locate().expect("the backend's VMM");
    // World-readable, in a world-searchable directory: the VMM user runs it.
    let dir = std::env::temp_dir().join(format!("voidbox-wrapper-{}-{v:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let wrapper = dir.join("vmm");
    std::fs::write(&wrapper, format!("#!/bin/sh\n\"{}\" \"$@\"\n", real.display())).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let ctd = Containerd::start_on(v, "wrapped", &[(vmm.env, wrapper.to_str().unwrap())]);
    let out = ctd.run_command("wrapped1", &[], &["echo", "wrapped"]).output().unwrap();
    assert_eq!(ok(&out, &ctd), "wrapped\n");
    // The shim ends the VM by killing its VMM: here the wrapper, and the
    // real VMM beneath it, whose command line names the VM's state.
    ctd.assert_clean();
    std::fs::remove_dir_all(dir).unwrap();
}

on_each_containerd!(a_vmm_run_by_a_wrapper_goes_with_its_container);
