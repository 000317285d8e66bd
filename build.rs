//! Compiles every `.proto` under `proto/` into tonic/prost stubs and writes the
//! file descriptor set that reflection and the gateway load.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment now.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let mut protos = Vec::new();
    collect_protos(Path::new("proto"), &mut protos)?;
    protos.sort();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("foodfast_descriptor.bin"))
        // Services this build does not implement yet answer UNIMPLEMENTED by default.
        .generate_default_stubs(true)
        // `DriverService.Connect` would clash with the generated `connect`
        // constructor; clients are built with `new(channel)` instead.
        .build_transport(false)
        .compile_protos(&protos, &[PathBuf::from("proto")])?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
