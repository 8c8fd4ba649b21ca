use netns_test_runtime::netns_test;

#[netns_test]
fn type_parameter<T: Default>() {}

#[netns_test]
fn lifetime<'a>() {}

#[netns_test]
fn where_clause()
where
    u8: Copy,
{
}

fn main() {}
