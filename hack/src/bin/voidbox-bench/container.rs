//! Container start: `ctr run --rm IMAGE true` with voidbox against runc, both
//! through one private containerd 1.6, alternating.

use std::time::Instant;

use voidbox_hack::stats::{ms, ratio, Samples};
use voidbox_integration::containerd::{Containerd, IMAGE};

const RUNC: &str = "io.containerd.runc.v2";
const VOIDBOX: &str = "io.containerd.voidbox.v2";

fn run(ctd: &Containerd, runtime: &str, id: &str) -> Result<std::time::Duration, String> {
    let start = Instant::now();
    let out = ctd
        .ctr_command()
        .args(["run", "--rm", "--runtime", runtime, "--fifo-dir"])
        .arg(ctd.dir.join("fifo"))
        .args([IMAGE, id, "true"])
        .output()
        .map_err(|e| format!("ctr: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!("{runtime}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(took)
}

pub fn run_suite(n: usize) -> Result<(), String> {
    let ctd = Containerd::start("bench");
    let (mut runc, mut voidbox) = (Samples::default(), Samples::default());
    println!("container: {n} runs of `ctr run --rm IMAGE true` each, alternating runc and voidbox");
    // One unmeasured run of each warms the page cache and containerd.
    run(&ctd, RUNC, "warm-runc")?;
    run(&ctd, VOIDBOX, "warm-voidbox")?;
    for i in 0..n {
        runc.push(run(&ctd, RUNC, &format!("runc-{i}"))?);
        voidbox.push(run(&ctd, VOIDBOX, &format!("voidbox-{i}"))?);
    }
    println!();
    println!("  runc      {}", runc.summary());
    println!("  voidbox   {}", voidbox.summary());
    println!(
        "  ratio voidbox / runc (median): {:.2}  (+{:.0} ms: the VM)",
        ratio(&voidbox, &runc),
        ms(voidbox.median()) - ms(runc.median())
    );
    Ok(())
}
