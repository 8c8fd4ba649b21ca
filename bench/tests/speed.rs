//! What the benchmark (`cargo run --release -p netns-test-bench`) runs: one
//! trivial netns test timed through the runtime, and a suite of 500 trivial
//! netns tests beside the same 500 as plain tests. All are ignored, so that
//! test runs skip them.

use std::time::{Duration, Instant};

use netns_test_runtime::netns_test;

#[netns_test]
#[ignore = "benchmark"]
fn trivial() {}

/// Times `trivial` through the runtime, in the mode `NETNS_TEST_MODE` picks,
/// alternating with the floor (when this process may measure it) so that
/// both meet the same conditions: namespaces are torn down asynchronously by
/// the kernel, and a backlog slows whatever runs next. Prints each call's
/// duration in nanoseconds, and the wall time of 500 floors made one after
/// another and from 2 threads at once.
#[test]
#[ignore = "benchmark"]
fn measure_one() {
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 25;
    let floor = netns_test_bench::floor_available();
    let settle = || std::thread::sleep(Duration::from_millis(300));
    for _ in 0..20 {
        trivial();
    }
    settle();
    let (mut runtime, mut floors) = (Vec::new(), Vec::new());
    let timed = |f: &dyn Fn(), into: &mut Vec<u128>| {
        for _ in 0..PER_ROUND {
            let start = Instant::now();
            f();
            into.push(start.elapsed().as_nanos());
        }
    };
    for _ in 0..ROUNDS {
        timed(&trivial, &mut runtime);
        if floor {
            timed(&netns_test_bench::floor_once, &mut floors);
        }
    }
    print_list("runtime_ns", &runtime);
    if floor {
        print_list("floor_ns", &floors);
        settle();
        let start = Instant::now();
        (0..500).for_each(|_| netns_test_bench::floor_once());
        println!("serial_wall_ns={}", start.elapsed().as_nanos());
        settle();
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| (0..250).for_each(|_| netns_test_bench::floor_once()));
            }
        });
        println!("parallel_wall_ns={}", start.elapsed().as_nanos());
    }
}

/// How many panics a caught-panics test catches.
const CAUGHT: usize = 200;

/// Catches [`CAUGHT`] panics, as a proptest run or a `catch_unwind` loop
/// does, and passes.
fn catch_panics() {
    for case in 0..CAUGHT {
        let caught = std::panic::catch_unwind(|| panic!("case {case} fails"));
        assert!(caught.is_err());
    }
}

#[netns_test]
#[ignore = "benchmark"]
fn netns_catches_panics() {
    catch_panics();
}

/// The median duration of a `#[netns_test]` that catches [`CAUGHT`] panics
/// and passes, and of a plain function that does the same, each run in
/// this thread, in alternating rounds.
#[test]
#[ignore = "benchmark"]
fn measure_caught_panics() {
    // The default hook would print every caught panic: both pay for the
    // same quiet hook, which netns-test's chains to.
    std::panic::set_hook(Box::new(|_| {}));
    let (mut netns, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let start = Instant::now();
        netns_catches_panics();
        netns.push(start.elapsed().as_nanos());
        let start = Instant::now();
        catch_panics();
        plain.push(start.elapsed().as_nanos());
    }
    print_list("caught_netns_ns", &netns);
    print_list("caught_plain_ns", &plain);
}

fn print_list(name: &str, values: &[u128]) {
    let printed: Vec<String> = values.iter().map(u128::to_string).collect();
    println!("{name}={}", printed.join(","));
}

mod fixture {
    macro_rules! ten {
        ($attr:meta, $body:block) => {
            ten!(@ $attr, $body; t0 t1 t2 t3 t4 t5 t6 t7 t8 t9);
        };
        (@ $attr:meta, $body:block; $($name:ident)*) => {
            $(
                #[$attr]
                #[ignore = "benchmark"]
                fn $name() $body
            )*
        };
    }
    macro_rules! tens {
        ($attr:meta, $body:block; $($module:ident)*) => {
            $(mod $module {
                #[allow(unused_imports)]
                use netns_test_runtime::netns_test;
                ten!($attr, $body);
            })*
        };
    }
    macro_rules! hundreds {
        ($attr:meta, $body:block; $($module:ident)*) => {
            $(mod $module {
                tens!($attr, $body; a0 a1 a2 a3 a4 a5 a6 a7 a8 a9);
            })*
        };
    }

    /// 500 trivial netns tests; the same 500 as plain tests; and 500 plain
    /// tests that each make the floor's namespace, which is the floor run
    /// with the parallelism a suite actually reaches.
    mod suite {
        mod netns {
            hundreds!(netns_test, {}; h0 h1 h2 h3 h4);
        }
        mod plain {
            hundreds!(test, {}; h0 h1 h2 h3 h4);
        }
        mod floor {
            hundreds!(test, { netns_test_bench::floor_once() }; h0 h1 h2 h3 h4);
        }
    }
}
