::core::compile_error! {
    "unknown argument `bogus`; `#[netns_test]` takes `threads`, `threads = N`, `timeout = \"10s\"`, `seed = N`, `network = path`, `sysfs`, `process`, `capture` and `crate = \"path\"`"
}
#[allow(dead_code, unused)]
fn t() {}
