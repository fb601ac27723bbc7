//! Writes the busybox OCI image tarball (built from Debian's busybox-static)
//! into a directory and prints its path, for `ctr image import`.
//!
//!   voidbox-busybox-image DIR

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: voidbox-busybox-image DIR");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir).expect("create output directory");
    let path = voidbox_integration::image::busybox_tarball(std::path::Path::new(&dir));
    println!("{}", path.display());
}
