//! A TCP proxy that can freeze or sever the traffic between a client and a server.

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
                        () = forward(client_read, server_write, watch.clone(), generation) => {}
                        () = forward(server_read, client_write, watch, generation) => {}
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
async fn forward(
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
