//! Integration tests: one binary, a real server per test on port 0 with its
//! own temporary data directory, driven over real HTTP.
//!
//! Every response passes through [`helpers::Resp`], which fails the test on
//! any 5xx or non-JSON API response: "never a 5xx, always JSON" is checked
//! everywhere, not only where a test remembers to.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod helpers;

mod accounts;
mod block_race;
mod counters;
mod crash;
mod discovery;
mod graph;
mod hardening;
mod http_rules;
mod media;
mod notifications;
mod oauth;
mod pages;
mod process;
mod search;
mod security;
mod startup;
mod statuses;
mod streaming;
mod timelines;
mod visibility;
