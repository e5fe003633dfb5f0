//! Fixtures shared by the workspace's integration tests: the servers that `scripts/servers.sh`
//! starts, found through the environment variables it exports, and a TCP proxy that can
//! blackhole the traffic between a client and a server.

/// The value of environment variable `name` (a server URL or a control command that
/// `scripts/servers.sh` exports). Without it the test is skipped with a printed reason, except
/// under CI (`CI` set), where a missing server is a failure.
///
/// # Panics
/// Under CI, when the variable is missing.
pub fn require_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "{name} is not set: CI must run the tests through scripts/test.sh, which starts the servers"
            )
        }
        _ => {
            eprintln!("skipped: {name} is not set (run through scripts/servers.sh to start the servers)");
            None
        }
    }
}

/// Runs a server control command exported by `scripts/servers.sh` (stop or start a server) and
/// checks that it succeeded.
///
/// # Panics
/// If the command cannot run or fails.
pub fn run_control(command: &str) {
    let status = std::process::Command::new(command).status().expect("running a server control command");
    assert!(status.success(), "{command} failed: {status}");
}

/// Runs a server control command exported by `scripts/servers.sh` with one argument (a port, for
/// the cluster node starter) and checks that it succeeded.
///
/// # Panics
/// If the command cannot run or fails.
pub fn run_control_with(command: &str, arg: &str) {
    let status =
        std::process::Command::new(command).arg(arg).status().expect("running a server control command");
    assert!(status.success(), "{command} {arg} failed: {status}");
}

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
                if let Some((host, port)) = addr.rsplit_once(':')
                    && let Ok(port) = port.parse()
                {
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
    if let Ok(client) = redis::Client::open(format!("redis://{host}:{port}"))
        && let Ok(mut conn) = client.get_multiplexed_async_connection().await
    {
        let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query_async::<()>(&mut conn).await;
    }
}

/// A TCP proxy on loopback in front of a server, whose traffic can be frozen while every
/// connection stays open (what arrives meanwhile is held and delivered once the traffic flows
/// again, as TCP does across a short partition or a paused server), and whose connections can be
/// severed (what was held is lost, as when a middlebox or the server restarts). For testing what
/// a client notices, and when.
#[derive(Debug)]
pub struct FreezableProxy {
    addr: std::net::SocketAddr,
    state: tokio::sync::watch::Sender<ProxyState>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ProxyState {
    frozen: bool,
    /// Bumped by `sever`: connections from an earlier generation end.
    generation: u64,
}

impl FreezableProxy {
    /// Starts a proxy to `target` (`host:port`) on a free loopback port. Needs a tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let (state, watch) = tokio::sync::watch::channel(ProxyState::default());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, watch) = (target.clone(), watch.clone());
                tokio::spawn(async move {
                    let generation = watch.borrow().generation;
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else { return };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    // The first pipe to end (closed, or severed) ends the connection.
                    tokio::select! {
                        () = pipe(client_read, server_write, watch.clone(), generation) => {}
                        () = pipe(server_read, client_write, watch, generation) => {}
                    }
                });
            }
        });
        Self { addr, state }
    }

    /// The proxy's address, to give the client instead of the server's.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Freezes (`true`) or resumes (`false`) the traffic of every connection, current and new.
    pub fn freeze(&self, frozen: bool) {
        self.state.send_modify(|s| s.frozen = frozen);
    }

    /// Closes every current connection; what they held is lost. New connections are accepted.
    pub fn sever(&self) {
        self.state.send_modify(|s| s.generation += 1);
    }
}

/// Copies `from` to `to` while the traffic is not frozen, until either side closes or the
/// connection is severed.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: tokio::sync::watch::Receiver<ProxyState>,
    generation: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = state.wait_for(|s| s.generation != generation) => return,
        };
        // What arrived while frozen is delivered after, unless the connection is severed.
        match state.wait_for(|s| !s.frozen || s.generation != generation).await {
            Ok(s) if s.generation == generation => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
