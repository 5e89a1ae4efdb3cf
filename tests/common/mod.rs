//! Shared helpers for integration tests: the golden data set and its comparison rules.
#![allow(dead_code)]

pub mod golden;
