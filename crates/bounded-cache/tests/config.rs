//! Settings from configuration files (feature `serde`): sizes and durations with units, the
//! policy by name, and clear errors for what is wrong.
#![cfg(feature = "serde")]

use std::time::Duration;

use bounded_cache::{Cache, CacheConfig, ConfigError, Policy};

#[test]
fn sizes_durations_and_policy_names_are_read_with_their_units() {
    let yaml = "
budget: 64 MiB
policy: s3-fifo
shards: 8
time_to_live: 5m
time_to_idle: 90s
refresh_after: 4m 30s
stale_while_revalidate: 1m
";
    let config: CacheConfig = serde_norway::from_str(yaml).unwrap();
    assert_eq!(config.budget, 64 << 20);
    assert_eq!(config.policy, Policy::S3Fifo);
    assert_eq!(config.shards, Some(8));
    assert_eq!(config.time_to_live, Some(Duration::from_secs(300)));
    assert_eq!(config.time_to_idle, Some(Duration::from_secs(90)));
    assert_eq!(config.refresh_after, Some(Duration::from_secs(270)));
    assert_eq!(config.stale_while_revalidate, Some(Duration::from_secs(60)));
    let cache: Cache<String, String> = config.builder().build().unwrap();
    assert_eq!((cache.budget(), cache.policy(), cache.shards()), (64 << 20, Policy::S3Fifo, 8));

    for (budget, bytes) in [(r#""1.5 GB""#, 1_500_000_000), (r#""512KiB""#, 512 << 10), ("1024", 1024)] {
        let config: CacheConfig = serde_json::from_str(&format!(r#"{{ "budget": {budget} }}"#)).unwrap();
        assert_eq!(config.budget, bytes, "{budget}");
        assert_eq!(config.policy, Policy::TinyLfu, "the default policy");
    }
    // What it writes, it reads back.
    let round: CacheConfig = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(round, config);
}

#[test]
fn settings_left_out_keep_the_builders() {
    let config: CacheConfig = serde_json::from_str(r#"{ "budget": "1 MiB" }"#).unwrap();
    let cache: Cache<u32, u32> = Cache::builder(1).policy(Policy::S3Fifo).config(&config).build().unwrap();
    assert_eq!(cache.budget(), 1 << 20);
    assert_eq!(cache.policy(), Policy::TinyLfu, "the policy is always stated (its default is W-TinyLFU)");
    let config = CacheConfig::new(4096);
    let cache: Cache<u32, u32> = Cache::builder(1).shards(2).config(&config).build().unwrap();
    assert_eq!(cache.shards(), 2, "shards left out keep the builder's");
}

#[test]
fn bad_settings_are_clear_errors() {
    let err = |json: &str| serde_json::from_str::<CacheConfig>(json).unwrap_err().to_string();
    let unit = err(r#"{ "budget": "64 MiBs" }"#);
    assert!(unit.contains("64 MiBs") && unit.contains("a size such as"), "{unit}");
    let negative = err(r#"{ "budget": -1 }"#);
    assert!(negative.contains("a number of bytes"), "{negative}");
    let policy = err(r#"{ "budget": 1024, "policy": "lfu" }"#);
    assert!(policy.contains(r#"unknown eviction policy "lfu""#), "{policy}");
    let typo = err(r#"{ "budget": 1024, "time_to_life": "5m" }"#);
    assert!(typo.contains("unknown field `time_to_life`"), "{typo}");
    let duration = err(r#"{ "budget": 1024, "time_to_live": "5 fortnights" }"#);
    assert!(duration.contains("fortnights"), "{duration}");
    let missing = err(r#"{ "policy": "lru" }"#);
    assert!(missing.contains("missing field `budget`"), "{missing}");
    // Values that parse but cannot make a cache fail at build, as in code.
    let zero: CacheConfig = serde_json::from_str(r#"{ "budget": "0 B" }"#).unwrap();
    assert_eq!(zero.builder::<u32, u32>().build().unwrap_err(), ConfigError::ZeroBudget);
    let zero: CacheConfig = serde_json::from_str(r#"{ "budget": 10, "refresh_after": "0s" }"#).unwrap();
    assert_eq!(zero.builder::<u32, u32>().build().unwrap_err(), ConfigError::ZeroRefresh);
}

#[test]
fn policies_parse_by_name_in_any_case() {
    assert_eq!("LRU".parse::<Policy>(), Ok(Policy::Lru));
    assert_eq!("S3FIFO".parse::<Policy>(), Ok(Policy::S3Fifo));
    assert_eq!(Policy::S3Fifo.name().parse::<Policy>(), Ok(Policy::S3Fifo));
    assert_eq!("W-TinyLFU".parse::<Policy>(), Ok(Policy::TinyLfu));
    assert_eq!("tinylfu".parse::<Policy>(), Ok(Policy::TinyLfu));
    assert_eq!(Policy::TinyLfu.name().parse::<Policy>(), Ok(Policy::TinyLfu));
    assert!("arc".parse::<Policy>().is_err());
}
