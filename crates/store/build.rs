//! Embeds `migrations/` into the binary, so `foodfast migrate` needs no files
//! beside it (a Kubernetes Job runs the image alone).

use std::fmt::Write as _;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").canonicalize()?;
    let mut out = String::new();
    for (kind, extension) in [("cockroach", "sql"), ("scylla", "cql")] {
        let dir = root.join(kind);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> =
            std::fs::read_dir(&dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
        files.retain(|path| path.extension().is_some_and(|ext| ext == extension));
        files.sort();
        writeln!(out, "pub const {}: &[(&str, &str)] = &[", kind.to_uppercase())?;
        for path in files {
            let name = path.file_name().and_then(|n| n.to_str()).ok_or("non-UTF-8 migration file name")?;
            writeln!(out, "    ({name:?}, include_str!({:?})),", path.display().to_string())?;
        }
        writeln!(out, "];")?;
    }
    std::fs::write(Path::new(&std::env::var("OUT_DIR")?).join("migrations.rs"), out)?;
    Ok(())
}
