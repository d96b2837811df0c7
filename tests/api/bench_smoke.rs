//! A small-N run of the benchmark (the full one takes minutes and lives outside the test
//! run, see BENCHMARKS.md), so that it keeps working as the code changes: the main table,
//! and the `--multi` and `--perf-stat` modes where their servers and tools are here.

use std::process::Command;

/// Whether PostgreSQL (and so, by the test setup, MariaDB) is here to bench against.
fn servers() -> bool {
    std::env::var_os("CI").is_some() || std::net::TcpStream::connect("127.0.0.1:5432").is_ok()
}

/// The benchmark with `args` and a small table; its stdout, after checking it succeeded.
fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_retentiond-bench"))
        .args(args)
        .args(["--retentiond", env!("CARGO_BIN_EXE_retentiond")])
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_benchmark_runs_end_to_end_on_a_small_table() {
    let dbs = if servers() {
        "sqlite,postgres,mysql"
    } else {
        "sqlite"
    };
    let stdout = bench(&["--rows", "2000", "--db", dbs, "--trail", "5000"]);
    for db in dbs.split(',') {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {db} | 2000 | 600 |")))
            .unwrap_or_else(|| panic!("no {db} row in {stdout}"));
        assert!(row.contains("×") && row.contains("MB"), "{row}");
        // A measurement that failed (pt-archiver, on MariaDB) says so and fails the run.
        assert!(!row.contains("failed"), "{row}");
    }
    let trail = stdout
        .lines()
        .find(|l| l.starts_with("| state SQLite | 5000 |"))
        .unwrap_or_else(|| panic!("no audit trail row in {stdout}"));
    assert!(trail.contains("/s") && trail.contains("MB"), "{trail}");
}

#[test]
fn the_benchmark_times_one_pass_over_three_databases_against_three() {
    if !servers() {
        return;
    }
    let stdout = bench(&["--rows", "2000", "--multi"]);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| 2000 | 1800 |"))
        .unwrap_or_else(|| panic!("no --multi row in {stdout}"));
    assert!(
        row.contains("×") && row.matches(" s |").count() >= 5,
        "{row}"
    );
}

#[test]
fn the_benchmark_counts_the_instructions_of_a_fixed_pass() {
    let tool = |name: &str| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !tool("perf") && !tool("valgrind") {
        return;
    }
    let stdout = bench(&["--rows", "2000", "--perf-stat"]);
    let row = stdout
        .lines()
        .find(|l| l.contains("| sqlite | 2000 | 600 |"))
        .unwrap_or_else(|| panic!("no --perf-stat row in {stdout}"));
    assert!(
        row.starts_with("| perf stat") || row.starts_with("| valgrind"),
        "{row}"
    );
}
