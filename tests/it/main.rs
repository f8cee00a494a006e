//! Integration tests: one binary, one module per stage, a fresh store per test.

mod acks;
mod admin;
mod cli;
mod config;
mod daemon;
mod findings;
mod guards;
mod helpers;
mod incremental;
mod notify;
mod replicas;
mod retention;
mod silences;
mod smtp;
mod soda;
mod sync;
mod web;
mod webhooks;
