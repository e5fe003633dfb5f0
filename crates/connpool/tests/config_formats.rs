//! Loading a `Config` with serde from TOML, YAML and JSON (feature `serde`).
#![cfg(feature = "serde")]

use std::time::Duration;

use connpool::{Config, RetryPolicy};

fn expected() -> Config {
    let mut config = Config::api();
    config.max_size = 80;
    config.idle_timeout = Some(Duration::from_secs(120));
    config.max_lifetime = None;
    config.retry = RetryPolicy::Linear { delay: Duration::from_millis(500), max_retries: 4 };
    config.checkout_timeout = Duration::from_secs(300);
    config
}

#[test]
fn toml() {
    let text = r#"
        profile = "api"
        max_size = 80
        idle_timeout = "2m"
        max_lifetime = "never"
        checkout_timeout = "300s"
        retry = { kind = "linear", delay = "500ms", max_retries = 4 }
    "#;
    assert_eq!(toml::from_str::<Config>(text).unwrap(), expected());
}

#[test]
fn yaml() {
    let text = "
profile: api
max_size: 80
idle_timeout: 2m
max_lifetime: false
checkout_timeout: 5m
retry:
  kind: linear
  delay: 500ms
  max_retries: 4
";
    assert_eq!(serde_norway::from_str::<Config>(text).unwrap(), expected());
}

#[test]
fn json() {
    let text = r#"{"profile": "api", "max_size": 80, "idle_timeout": "120s", "max_lifetime": "off",
        "checkout_timeout": "5m", "retry": {"kind": "linear", "delay": "0.5s", "max_retries": 4}}"#;
    assert_eq!(serde_json::from_str::<Config>(text).unwrap(), expected());
}

#[test]
fn defaults_and_errors() {
    assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
    assert_eq!(toml::from_str::<Config>("profile = \"realtime\"").unwrap(), Config::realtime());
    let unknown = toml::from_str::<Config>("max_sise = 3").unwrap_err().to_string();
    assert!(unknown.contains("max_sise"), "{unknown}");
    let bad = toml::from_str::<Config>("idle_timeout = \"soon\"").unwrap_err().to_string();
    assert!(bad.contains("soon") || bad.contains("invalid"), "{bad}");
    // Deserialising does not validate: building does.
    let config: Config = toml::from_str("min_size = 9\nmax_size = 3").unwrap();
    assert!(config.validate().is_err());
}
