use netns_test_runtime::netns_test;

#[netns_test]
#[tokio::test]
async fn tokio_below() {}

fn main() {}
