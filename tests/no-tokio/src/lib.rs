//! Holds one UI test: an async `#[netns_test]` without the `tokio` feature.
