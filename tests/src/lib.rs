//! Helpers shared by the integration tests of netns-test.
