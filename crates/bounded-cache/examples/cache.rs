//! A cache of rendered user profiles in front of a slow store: a hard 1 MiB budget, a time to
//! live, one load per missing key however many threads ask for it at once, invalidation that
//! wins over a load in flight, and the statistics a service would export.
//!
//! `cargo run --release --example cache`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bounded_cache::{Cache, LoadError, Policy};

/// The slow store behind the cache: 2 ms per read, and it knows users 0 to 9,999 only.
struct Store {
    reads: AtomicU64,
}

impl Store {
    fn render(&self, user: u64) -> Result<String, std::io::Error> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(2));
        if user >= 10_000 {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no user {user}")));
        }
        Ok(format!("<div class=\"profile\">user {user}: {}</div>", "*".repeat((user % 200) as usize)))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store { reads: AtomicU64::new(0) };
    let cache: Cache<u64, String> =
        Cache::builder(1 << 20).policy(Policy::S3Fifo).time_to_live(Duration::from_secs(60)).build()?;

    // Eight request threads, skewed traffic: most requests are for a few popular users.
    std::thread::scope(|s| {
        for thread in 0..8u64 {
            let (cache, store) = (&cache, &store);
            s.spawn(move || {
                let mut state = thread * 7919 + 1;
                for _ in 0..5_000 {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let r = (state >> 33) % 1000;
                    let user = if r < 800 { r % 50 } else { (state >> 13) % 12_000 };
                    match cache.try_get_or_insert_with(user, || store.render(user)) {
                        Ok(page) => assert!(page.contains(&format!("user {user}:"))),
                        // Errors are shared by the callers that waited for the load, never cached.
                        Err(LoadError::Failed(error)) => {
                            assert_eq!(error.kind(), std::io::ErrorKind::NotFound)
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
            });
        }
    });

    // A user changed their profile: the cached page goes, the next read renders it again.
    cache.remove(&7);
    let fresh = cache.get_or_insert_with(7, || store.render(7).expect("user 7 exists"));
    assert!(fresh.starts_with("<div"));

    let stats = cache.stats();
    println!("{stats}");
    println!(
        "40,000 requests, {} store reads, hit rate {:.1}%, {} bytes in use of {} (the budget is never exceeded)",
        store.reads.load(Ordering::Relaxed),
        stats.hit_rate() * 100.0,
        cache.weighed_size(),
        cache.budget()
    );
    assert!(cache.weighed_size() <= cache.budget());
    Ok(())
}
