use netns_test_runtime::netns_test;

#[netns_test]
fn returns_a_number() -> u32 {
    7
}

#[netns_test]
fn error_without_debug() -> Result<(), NoDebug> {
    Ok(())
}

struct NoDebug;

fn main() {}
