//! The `dhat` feature: the same program, switched to dhat's heap profiler.

alloctrack::global_allocator!();

#[test]
fn a_heap_profile_is_written_and_counting_goes_on() {
    let path = std::env::temp_dir().join(format!("alloctrack-dhat-{}.json", std::process::id()));
    let before = alloctrack::snapshot();
    {
        let _profile = alloctrack::HeapProfile::to_file(&path);
        let blocks: Vec<Vec<u8>> = (0..100).map(|i| vec![0u8; 1000 + i]).collect();
        std::hint::black_box(&blocks);
    }
    let after = alloctrack::snapshot();
    assert!(after.allocations - before.allocations >= 101, "counting stopped under dhat");

    let json = std::fs::read_to_string(&path).expect("dhat wrote its profile");
    std::fs::remove_file(&path).ok();
    let json: String = json.split_whitespace().collect();
    assert!(json.contains("\"dhatFileVersion\""), "not a dhat profile");
    assert!(json.contains("\"mode\":\"rust-heap\""), "not a heap profile");
    // dhat's summary records the bytes and blocks of the whole run.
    let bytes_in_blocks: usize = (0..100).map(|i| 1000 + i).sum();
    let total_bytes = json
        .split("\"tb\":")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok())
        .sum::<usize>();
    assert!(
        total_bytes >= bytes_in_blocks,
        "the profile has {total_bytes} bytes, expected {bytes_in_blocks}+"
    );
}
