//! The whole API suite (`tests/api`) again, with every test server keeping its community in
//! PostgreSQL: one private server started here, a new database per test
//! (`HEARTH_TEST_POSTGRES`, see `tests/common/app.rs`). The contract is the same on both
//! stores, so the same tests must pass; the few about what only SQLite has (its file, its
//! search index, backups, upgrades of old files) say so and stand aside.

use std::path::PathBuf;
use std::process::Command;

use crate::engines::Postgres;

/// The API suite's test binary, built beside this one by the same `cargo test` (the newest,
/// should an older build have left another).
fn api_suite() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("api-") && !name.contains('.')
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, path)| path)
}

#[test]
fn the_api_suite_passes_on_postgresql() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let Some(suite) = api_suite() else {
        // `cargo test --test system` alone builds no API suite; `cargo test` builds both.
        assert!(
            std::env::var_os("CI").is_none(),
            "the API suite's binary is not beside this one"
        );
        eprintln!("skipped: build the API suite too (cargo test --workspace)");
        return;
    };
    let out = Command::new(&suite)
        // Uncaptured, so that the tests standing aside can be counted.
        .arg("--nocapture")
        .env("HEARTH_TEST_POSTGRES", pg.url("postgres"))
        .env_remove("HEARTH_TEST_LOG")
        .output()
        .expect("the API suite runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .filter(|l| l.starts_with("test result:") || l.contains("FAILED"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "the API suite failed on PostgreSQL:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        summary.contains(" 0 failed") && !summary.contains(" 0 passed"),
        "{summary}"
    );
    // Tests about what only SQLite has return early (`sqlite_only`): the harness counts
    // them as passed, so they are counted here and reported apart.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let aside: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("not applicable on PostgreSQL: "))
        .collect();
    let mut why = aside.clone();
    why.sort_unstable();
    why.dedup();
    eprintln!(
        "API suite on PostgreSQL: {summary} ({} of the passed are SQLite-only and stood aside: \
         {})",
        aside.len(),
        why.join("; ")
    );
    let passed: usize = summary
        .split(" passed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of passed tests in: {summary}"));
    assert!(
        aside.len() * 10 < passed,
        "{} of {passed} tests stood aside on PostgreSQL: the suite barely ran there",
        aside.len()
    );
}
