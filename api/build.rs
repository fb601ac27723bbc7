//! Generates protobuf messages and async TTRPC stubs for every .proto under proto/.

use std::{fs, path::Path, path::PathBuf};

use ttrpc_codegen::{Codegen, Customize, ProtobufCustomize};

fn protos(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read proto dir") {
        let path = entry.expect("proto dir entry").path();
        if path.is_dir() {
            protos(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

fn main() {
    let mut inputs = Vec::new();
    protos(Path::new("proto"), &mut inputs);
    inputs.sort();
    println!("cargo:rerun-if-changed=proto");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("gen");
    fs::create_dir_all(&out).expect("create gen dir");
    Codegen::new()
        .inputs(&inputs)
        .include("proto")
        .rust_protobuf()
        .rust_protobuf_customize(ProtobufCustomize::default().gen_mod_rs(false))
        .customize(Customize {
            async_all: true,
            ..Default::default()
        })
        .out_dir(&out)
        .run()
        .expect("generate protos");

    // `include!` rejects inner attributes and inner doc comments.
    for entry in fs::read_dir(&out).expect("read gen dir") {
        let path = entry.expect("gen entry").path();
        let text = fs::read_to_string(&path).expect("read generated file");
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("#!") && !l.starts_with("//!"))
            .collect();
        fs::write(&path, kept.join("\n")).expect("write generated file");
    }
}
