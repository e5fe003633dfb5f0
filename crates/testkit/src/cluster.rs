//! Redis Cluster helpers for failover tests.

/// The address (`host`, `port`) of one live master of the Redis Cluster seeded by `seeds`, from
/// `CLUSTER NODES`: the node a failover test shuts down.
///
/// # Panics
/// If no seed answers with a live master.
pub async fn redis_cluster_master(seeds: &[&str]) -> (String, u16) {
    for seed in seeds {
        let Ok(client) = redis::Client::open(*seed) else { continue };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else { continue };
        let Ok(nodes): Result<String, _> = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn).await
        else {
            continue;
        };
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() > 2 && fields[2].contains("master") && !fields[2].contains("fail") {
                let addr = fields[1].split('@').next().expect("split yields one part");
                if let Some((host, Ok(port))) = addr.rsplit_once(':').map(|(h, p)| (h, p.parse())) {
                    return (host.to_string(), port);
                }
            }
        }
    }
    panic!("no live master in the cluster seeded by {seeds:?}")
}

/// Shuts the Redis server at `host:port` down without saving (a crashed node, for failover
/// tests); errors are ignored, as the server closes the connection as it goes.
pub async fn redis_shutdown(host: &str, port: u16) {
    let Ok(client) = redis::Client::open(format!("redis://{host}:{port}")) else { return };
    if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query_async::<()>(&mut conn).await;
    }
}
