//! A crate that re-exports netns-test's runtime, as a test-support crate would.

/// The runtime, re-exported.
pub use renamed_runtime as netns;
