//! All integration tests in one binary (one module per capability), each in its own temp dir.

mod util;

mod bad_input;
mod delivery;
mod formats;
mod rerun;
mod sealing;
