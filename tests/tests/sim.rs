//! The deterministic simulator (`paddock_tests::sim`) over many seeds, with faults on, and the
//! proof that it catches planted bugs within the same seed budget.
//!
//! `PADDOCK_SIM_SEEDS=N` runs N seeds (default 10,000, about 35 s alone); `PADDOCK_SIM_SEED=S` replays one,
//! and `PADDOCK_SIM_TRACE=1` prints what happens in it (roles, syncs, faults, commits, replies).

use paddock_tests::sim::{self, Plant, SimConfig};

fn seed_count() -> u64 {
    std::env::var("PADDOCK_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000)
}

fn replay_hint(seed: u64) -> String {
    format!(
        "replay with: PADDOCK_SIM_SEED={seed} cargo test --release -p paddock-tests --test sim -- seeds --nocapture"
    )
}

#[test]
fn seeds() {
    let seeds: Vec<u64> = match std::env::var("PADDOCK_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(one) => vec![one],
        None => (1..=seed_count()).collect(),
    };
    let started = std::time::Instant::now();
    let mut total = sim::Report::default();
    for &seed in &seeds {
        match sim::run(SimConfig::for_seed(seed)) {
            Ok(r) => {
                total.ops += r.ops;
                total.acked_writes += r.acked_writes;
                total.commits += r.commits;
                total.leaders += r.leaders;
                total.crashes += r.crashes;
                total.partitions += r.partitions;
                total.syncs_snap += r.syncs_snap;
                total.syncs_trunc += r.syncs_trunc;
                total.digest ^= r.digest;
            }
            Err(f) => panic!("simulation failed: {f}\n{}", replay_hint(seed)),
        }
    }
    println!("{} seeds in {:.1} s: {total:?}", seeds.len(), started.elapsed().as_secs_f64());
    assert!(total.acked_writes > seeds.len() as u64 * 10, "the clients got little done: {total:?}");
    assert!(total.leaders > seeds.len() as u64, "faults never forced a new leader: {total:?}");
}

/// A failing seed replays exactly: the same seed twice gives the same run.
#[test]
fn a_seed_replays_exactly() {
    for seed in [7, 8] {
        let a = format!("{:?}", sim::run(SimConfig::for_seed(seed)));
        let b = format!("{:?}", sim::run(SimConfig::for_seed(seed)));
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
}

/// Runs the CI seed budget with a bug planted; it must be caught.
fn caught(plant: Plant) -> sim::Failure {
    for seed in 1..=seed_count() {
        let cfg = SimConfig { plant, ..SimConfig::for_seed(seed) };
        if let Err(f) = sim::run(cfg) {
            println!("{plant:?} caught: {f}");
            return f;
        }
    }
    panic!("{plant:?} was not caught in {} seeds", seed_count());
}

#[test]
fn a_leader_committing_on_a_minority_is_caught() {
    caught(Plant::CommitOnMinority);
}

#[test]
fn acking_before_fsync_is_caught() {
    caught(Plant::AckBeforeFsync);
}
