//! Times the phases of loading a snapshot (decode, rebuild), to find what restart spends.
//!
//! cargo run --release -p paddock-bench --example restore_timing -- SNAPSHOT_FILE

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: restore_timing SNAPSHOT_FILE")?);
    let t = std::time::Instant::now();
    let (tree, zxid) = engine::snapshot::load_tree(&path)?;
    println!("load_tree: {:?} ({} nodes, zxid {zxid:#x})", t.elapsed(), tree.node_count());
    let t = std::time::Instant::now();
    drop(tree);
    println!("drop: {:?}", t.elapsed());
    Ok(())
}
