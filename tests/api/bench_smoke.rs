//! A small-N run of the benchmark (the full one takes minutes and lives outside the test
//! run, see BENCHMARKS.md), so that it keeps working as the code changes.

use std::process::Command;

#[test]
fn the_benchmark_runs_end_to_end_on_a_small_table() {
    let dbs = if std::env::var_os("CI").is_some()
        || std::net::TcpStream::connect("127.0.0.1:5432").is_ok()
    {
        "sqlite,postgres,mysql"
    } else {
        "sqlite"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_retentiond-bench"))
        .args([
            "--rows",
            "2000",
            "--db",
            dbs,
            "--trail",
            "5000",
            "--retentiond",
            env!("CARGO_BIN_EXE_retentiond"),
        ])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for db in dbs.split(',') {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {db} | 2000 | 600 |")))
            .unwrap_or_else(|| panic!("no {db} row in {stdout}"));
        assert!(row.contains("×") && row.contains("MB"), "{row}");
    }
    let trail = stdout
        .lines()
        .find(|l| l.starts_with("| state SQLite | 5000 |"))
        .unwrap_or_else(|| panic!("no audit trail row in {stdout}"));
    assert!(trail.contains("/s") && trail.contains("MB"), "{trail}");
}
