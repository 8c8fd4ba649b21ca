//! Example tests for netns-test: see `tests/` and `examples/doctor.rs`.
