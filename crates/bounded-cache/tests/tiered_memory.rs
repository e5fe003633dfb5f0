//! The tier's memory under hostile or huge values, measured with alloctrack as this binary's
//! allocator (one test, its steps in sequence, so that no other test allocates meanwhile):
//! - values written straight into Redis (an oversized plain value, an lz4 header claiming more
//!   than the limit or a size its payload cannot hold, random bytes, another codec's value, a
//!   value with a wrong MAC) are each a counted corrupt miss, and none makes the process hold
//!   more than three times the limit at once (read buffer, reply, decoded value);
//! - L1 weighs the decoded value it holds, so 64 highly compressible 8 MiB values under a 1 MiB
//!   L1 keep the process's live bytes within the budget plus a stated overhead.
#![cfg(feature = "redis")]

mod common;

use bounded_cache::tier::TieredCache;

#[global_allocator]
static ALLOC: alloctrack::Tracking = alloctrack::Tracking::system();

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_hostile_values_stay_within_the_limits() {
    let Some(url) = common::require_env("REDIS_URL") else { return };
    let pool = common::pool(&url).await;

    // 1. Hostile values, each a corrupt miss that never has more than a few times the limit live.
    let ns = common::namespace("hostile");
    let limit = MIB;
    let cache: TieredCache<String> =
        common::builder(pool.clone(), &ns).max_value(limit).build().await.unwrap();
    let mut conn = pool.get().await.unwrap();
    let envelope = |flags: u8, payload: &[u8]| [&[0xBC, 1, 1, flags][..], payload].concat();
    let lz4_claim = |claim: u32| {
        let mut payload = claim.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0x10, b'x', 0, 0, 0]);
        envelope(1, &payload)
    };
    // A 100 MiB plain value, built by Redis itself so that this process never holds it.
    let oversized = cache.redis_key("case:oversized plain");
    let () = redis::cmd("SETRANGE")
        .arg(&oversized)
        .arg(0)
        .arg(envelope(0, &[0xDB]))
        .query_async(&mut *conn)
        .await
        .unwrap();
    let () = redis::cmd("SETRANGE")
        .arg(&oversized)
        .arg(100 * MIB - 1)
        .arg(b"x")
        .query_async(&mut *conn)
        .await
        .unwrap();
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("oversized plain", None),
        ("lz4 claiming 4 GiB", Some(lz4_claim(u32::MAX))),
        ("lz4 claiming the limit with a 9-byte payload", Some(lz4_claim(limit as u32 - 1))),
        ("random bytes", Some((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect())),
    ];
    // What a read may hold at once: the client's read buffer, the reply and the decoded value,
    // each at most the limit.
    let allowed = 3 * limit as u64;
    for (name, raw) in &cases {
        let key = format!("case:{name}");
        if let Some(raw) = raw {
            let () = redis::cmd("SET")
                .arg(cache.redis_key(&key))
                .arg(raw.as_slice())
                .query_async(&mut *conn)
                .await
                .unwrap();
        }
        let corrupt = cache.stats().l2_corrupt;
        let before = alloctrack::snapshot();
        assert!(
            before.peak_live_bytes < before.live_bytes + allowed,
            "the setup itself peaked too high to measure"
        );
        let got = cache.get(&key).await;
        let peak = alloctrack::snapshot().peak_live_bytes.saturating_sub(before.live_bytes);
        assert_eq!(got, None, "{name}");
        assert_eq!(cache.stats().l2_corrupt, corrupt + 1, "{name} was not counted corrupt");
        eprintln!("{name}: at most {peak} bytes live during the read");
        assert!(peak < allowed, "{name}: {peak} bytes live at once for a {limit}-byte limit");
    }
    drop(conn);
    // Another codec's value, and a value whose MAC does not match.
    let json: TieredCache<String, bounded_cache::tier::Json> =
        common::builder(pool.clone(), &ns).codec(bounded_cache::tier::Json).build().await.unwrap();
    json.insert("json", "written as JSON".to_string()).await;
    let signed: TieredCache<String> =
        common::builder(pool.clone(), &ns).mac_key(b"right key".to_vec()).build().await.unwrap();
    let forged: TieredCache<String> =
        common::builder(pool.clone(), &ns).mac_key(b"wrong key".to_vec()).build().await.unwrap();
    forged.insert("forged", "poison".to_string()).await;
    let corrupt = cache.stats().l2_corrupt;
    assert_eq!(cache.get("json").await, None);
    assert_eq!(cache.stats().l2_corrupt, corrupt + 1);
    let corrupt = signed.stats().l2_corrupt;
    assert_eq!(signed.get("forged").await, None, "a value signed with another key is refused");
    assert_eq!(signed.stats().l2_corrupt, corrupt + 1);
    signed.insert("genuine", "ok".to_string()).await;
    let other: TieredCache<String> =
        common::builder(pool.clone(), &ns).mac_key(b"right key".to_vec()).build().await.unwrap();
    assert_eq!(other.get("genuine").await.as_deref(), Some("ok"), "the same key verifies");
    drop((cache, json, signed, forged, other));

    // 2. L1 weighs what it holds: 64 values of 8 MiB of zeros (about 33 KB each compressed).
    let ns = common::namespace("weight");
    let cache: TieredCache<String> =
        common::builder(pool.clone(), &ns).l1_budget(MIB as u64).build().await.unwrap();
    let before = alloctrack::snapshot().live_bytes;
    for i in 0..64 {
        let key = format!("zeros:{i}");
        let value = cache
            .get_or_load(&key, || async { Ok::<_, std::io::Error>("\0".repeat(8 * MIB)) })
            .await
            .unwrap();
        assert_eq!(value.len(), 8 * MIB);
    }
    let live = alloctrack::snapshot().live_bytes.saturating_sub(before);
    // The budget, plus slack for the pool's buffers and the tier's own bookkeeping.
    let overhead = 4 * MIB as u64;
    eprintln!("64 x 8 MiB loaded through a 1 MiB L1: {live} bytes live");
    assert!(live <= MIB as u64 + overhead, "{live} bytes live for a 1 MiB L1: {}", cache.stats());
    assert!(cache.stats().l1.weighed_size <= MIB as u64);
}
