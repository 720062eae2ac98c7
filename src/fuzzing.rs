//! Case counts for the property tests: a few dozen in `cargo test`, as many as
//! `PROPTEST_CASES` asks for in a long run (docs/SECURITY.md, "Fuzzing").

use proptest::test_runner::Config;

/// proptest's configuration with `ci_cases` cases, unless `PROPTEST_CASES` is set.
pub(crate) fn config(ci_cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = ci_cases;
    }
    config
}
