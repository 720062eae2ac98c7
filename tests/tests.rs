//! All integration tests in one binary (one module per capability), each in its own temp dir.

mod garage;
mod nginx;
mod pg;
mod util;

mod bad_input;
mod cluster;
mod conformance;
mod crash;
mod delivery;
mod deployment;
mod edge;
mod express;
mod extras;
mod fans;
mod fetch;
mod formats;
mod hls;
mod hygiene;
mod idle;
mod integrity;
mod keys_cluster;
mod layout;
mod ledger_faults;
mod loudness;
mod lyrics;
mod objectstore;
mod offline;
mod purchases;
mod reload;
mod rerun;
mod rotation;
mod sealing;
mod serve;
mod trust;
mod web;
