//! Every SQL migration and every statement the store sends parses with
//! CockroachDB's own parser (`tools/crdbcheck`, a Go program).

use std::path::Path;
use std::process::Command;

#[test]
fn all_sql_parses_as_cockroachdb_sql() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let statements = tempfile::Builder::new().suffix(".sql").tempfile().unwrap();
    let text: String = foodfast_store::sql::ALL.iter().map(|(name, sql)| format!("-- {name}\n{sql};\n\n")).collect();
    std::fs::write(statements.path(), text).unwrap();

    let output = Command::new("go")
        .current_dir(repo.join("tools/crdbcheck"))
        .args(["run", "."])
        .arg(repo.join("migrations/cockroach"))
        .arg(statements.path())
        .output()
        .expect("`go` is needed to run CockroachDB's parser");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "CockroachDB's parser rejected SQL:\n{stdout}\n{stderr}");
    println!("{stdout}");
}
