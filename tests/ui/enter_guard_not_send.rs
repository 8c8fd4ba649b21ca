use netns_test_runtime::NetNs;

fn main() {
    let ns = NetNs::current().unwrap();
    let guard = ns.enter().unwrap();
    // The guard restores the thread that entered; another thread must not drop it.
    std::thread::scope(|scope| {
        scope.spawn(move || drop(guard));
    });
}
