//! PostgreSQL as deployed: over TLS (a server with `hostssl` rules only, certificates made by
//! `scripts/servers.sh` at test time), `sslmode` honoured, session-setup and recycle hooks, a
//! failing hook, and a password rotated while the pool runs.
#![cfg(feature = "postgres-rustls")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connpool::postgres::PgManager;
use connpool::{Config, Credentials, Hook, HookStage, Pool, PoolError, Secret};

fn config(min: usize, max: usize) -> Config {
    let mut config = common::config(min, max);
    config.checkout_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(5);
    config
}

fn tls() -> Option<rustls::ClientConfig> {
    let ca = common::require_env("TLS_CA_FILE")?;
    let roots = connpool::tls_roots(&std::fs::read(ca).unwrap()).unwrap();
    Some(connpool::tls_client_config(roots))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_connects_over_tls_and_the_server_confirms_it() {
    let (Some(url), Some(tls)) = (common::require_env("PG_TLS_URL"), tls()) else { return };
    let pool =
        Pool::builder(PgManager::rustls(&url, tls).unwrap()).config(config(2, 4)).build().await.unwrap();
    let tasks: Vec<_> = (0..16i32)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..10i32 {
                    let conn = pool.get().await.unwrap();
                    let row = conn
                        .query_one(
                            "SELECT ssl, $1::int4 * 100 + $2::int4 FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                            &[&t, &i],
                        )
                        .await
                        .unwrap();
                    assert!(row.get::<_, bool>(0), "the server says the session is not encrypted");
                    assert_eq!(row.get::<_, i32>(1), t * 100 + i);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(pool.metrics().checkouts, 160);
}

#[tokio::test]
async fn sslmode_require_against_a_server_without_tls_fails_clearly() {
    let (Some(url), Some(tls)) = (common::require_env("DATABASE_URL"), tls()) else { return };
    let url = format!("{url}?sslmode=require");
    let err =
        Pool::builder(PgManager::rustls(&url, tls).unwrap()).config(config(1, 1)).build().await.unwrap_err();
    let chain = testkit::report(&err);
    assert!(chain.contains("TLS"), "{chain}");
    // A manager without TLS cannot satisfy `require` either.
    let err = Pool::builder(PgManager::new(&url).unwrap()).config(config(1, 1)).build().await.unwrap_err();
    let chain = testkit::report(&err);
    assert!(chain.contains("TLS"), "{chain}");
    // And the TLS-only server refuses a client that does not use TLS.
    let Some(tls_url) = common::require_env("PG_TLS_URL") else { return };
    let plain = tls_url.replace("sslmode=require", "sslmode=disable");
    let err = Pool::builder(PgManager::new(&plain).unwrap()).config(config(1, 1)).build().await.unwrap_err();
    let chain = testkit::report(&err);
    assert!(chain.contains("no encryption"), "{chain}");
}

#[tokio::test]
async fn hooks_set_up_every_session_and_roll_back_what_a_user_left_open() {
    let Some(url) = common::require_env("DATABASE_URL") else { return };
    let setup = Hook::new(|conn: &mut connpool::postgres::PgConnection| {
        Box::pin(async move {
            conn.batch_execute("SET search_path TO hooked, public").await?;
            Ok(())
        })
    });
    let rollback = Hook::new(|conn: &mut connpool::postgres::PgConnection| {
        Box::pin(async move {
            conn.batch_execute("ROLLBACK").await?;
            Ok(())
        })
    })
    .timeout(Duration::from_secs(2));
    let pool = Pool::builder(PgManager::new(&url).unwrap())
        .config(config(1, 1))
        .after_connect(setup)
        .after_return(rollback)
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        let conn = pool.get().await.unwrap();
        let path: String = conn.query_one("SHOW search_path", &[]).await.unwrap().get(0);
        assert_eq!(path, "hooked, public", "the session setup ran on this connection");
        // A user leaves a transaction open, with a setting that would leak to the next user.
        conn.batch_execute("BEGIN; SET LOCAL search_path TO leaked").await.unwrap();
        drop(conn);
    }
    // Had the last transaction stayed open, its `SET LOCAL` would still be in effect.
    let conn = pool.get().await.unwrap();
    let path: String = conn.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert_eq!(path, "hooked, public", "a transaction was left open for the next user");
    let metrics = pool.metrics();
    assert_eq!((metrics.created, metrics.hook_failures), (1, 0), "{metrics}");
}

#[tokio::test]
async fn a_failing_hook_closes_the_connection_and_the_checkout_says_why() {
    let Some(url) = common::require_env("DATABASE_URL") else { return };
    let fail = Hook::new(|conn: &mut connpool::postgres::PgConnection| {
        Box::pin(async move {
            conn.batch_execute("SET no_such_setting TO 1").await?;
            Ok(())
        })
    });
    let pool = Pool::builder(PgManager::new(&url).unwrap())
        .config(config(1, 1))
        .before_checkout(fail)
        .build()
        .await
        .unwrap();
    let err = pool.get().await.unwrap_err();
    let PoolError::Hook(hook) = &err else { panic!("{err}") };
    assert_eq!(hook.stage(), HookStage::BeforeCheckout);
    let chain = testkit::report(&err);
    assert!(chain.contains("no_such_setting"), "{chain}");
    let metrics = pool.metrics();
    assert_eq!((metrics.closed.hook_failed, metrics.hook_failures), (1, 1), "{metrics}");

    // A failing after-connect hook fails the attempt, with the reason.
    let pool = Pool::builder(PgManager::new(&url).unwrap())
        .config(config(0, 1))
        .after_connect(Hook::new(|conn: &mut connpool::postgres::PgConnection| {
            Box::pin(async move {
                conn.batch_execute("SELECT no_such_column").await?;
                Ok(())
            })
        }))
        .build()
        .await
        .unwrap();
    let err = pool.get().await.unwrap_err();
    let chain = testkit::report(&err);
    assert!(chain.contains("after-connect hook failed") && chain.contains("no_such_column"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_reaches_new_connections_and_no_request_fails() {
    let Some(url) = common::require_env("DATABASE_URL") else { return };
    let admin = Pool::builder(PgManager::new(&url).unwrap()).config(config(0, 1)).build().await.unwrap();
    let role = "rotated";
    admin
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'first-secret'"
        ))
        .await
        .unwrap();

    let current = Arc::new(Mutex::new(String::from("first-secret")));
    let provider = {
        let current = Arc::clone(&current);
        move || {
            let password = current.lock().unwrap().clone();
            async move { Ok(Credentials::password(Secret::new(password)).user(role)) }
        }
    };
    let mut cfg = config(2, 4);
    // Short lifetimes, so that connections are made again while the run goes on.
    cfg.max_lifetime = Some(Duration::from_millis(300));
    cfg.lifetime_jitter = Duration::from_millis(100);
    // PostgreSQL holds one password per role: between the server's change and the secret
    // store's, a connect with either password can fail, as in any real rotation. The pool's
    // retry, which asks the provider again, is what keeps checkouts from failing then.
    cfg.retry = connpool::RetryPolicy::Exponential {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(100),
        max_retries: 10,
    };
    let manager =
        PgManager::new(&url.replace("postgres@", &format!("{role}@"))).unwrap().credentials(provider);
    assert!(!format!("{manager:?}").contains("secret"), "{manager:?}");
    let pool = Pool::builder(manager).config(cfg).build().await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (pool, stop) = (pool.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut done = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let conn = pool.get().await.expect("no checkout fails across the rotation");
                    let user: String = conn.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
                    assert_eq!(user, role);
                    done += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                done
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created_before = pool.metrics().created;
    // Rotate: the server first, then the secret store the provider reads.
    admin
        .get()
        .await
        .unwrap()
        .batch_execute(&format!("ALTER ROLE {role} PASSWORD 'second-secret'"))
        .await
        .unwrap();
    *current.lock().unwrap() = "second-secret".to_string();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut requests = 0;
    for worker in workers {
        requests += worker.await.unwrap();
    }
    let metrics = pool.metrics();
    assert!(metrics.created > created_before, "connections were made with the new password: {metrics}");
    // Only connects that raced the rotation may have failed (and were retried).
    assert!(metrics.connect_failures <= 4, "{metrics}");
    // Every connection is made with SCRAM (slow in a debug build) and lives 300 ms: few requests.
    assert!(requests >= 20, "{requests} requests");
}
