use netns_test_runtime::netns_test;
use rstest::rstest;
use test_case::test_case;

#[netns_test]
#[test_case(4)]
#[test_case(6)]
fn test_case_below(family: u8) {
    let _ = family;
}

#[netns_test]
#[rstest]
#[case(4)]
fn rstest_below(#[case] family: u8) {
    let _ = family;
}

fn main() {}
