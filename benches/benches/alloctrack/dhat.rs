//! `alloctrack-overhead` under dhat's heap profiler (its allocator, with a profile running).

#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: dhat::Alloc = dhat::Alloc;

fn main() {
    // dhat's allocator only records while a profiler runs; the profile goes to a temp file.
    let path = std::env::temp_dir().join("alloctrack-overhead-dhat.json");
    let profiler = dhat::Profiler::builder().file_name(&path).build();
    let mut criterion = criterion::Criterion::default().configure_from_args();
    workload::bench(&mut criterion, "dhat");
    drop(profiler);
    std::fs::remove_file(path).ok();
    criterion.final_summary();
}
