//! The invalidation subscription: keeps it up, proves it alive, and acts on what it hears.
//!
//! - A subscription connection of its own (`RedisManager::pubsub`: on a cluster, the next node
//!   each time, so that a dead node is skipped), re-established with backoff.
//! - **Heartbeat**: every `heartbeat_every` the subscription is pinged (`PING` is allowed on a
//!   subscribed connection and answered in order with the messages); a ping unanswered within
//!   `heartbeat_timeout` means the subscription is lost, whatever the TCP connection says (a
//!   half-open connection, a paused server). A subscription that ends outright is lost at once.
//! - **Loss**: the cache marks itself unsubscribed (meanwhile an L1 copy is served for
//!   `heartbeat_every + heartbeat_timeout` at most, the bound it could go stale unheard), clears
//!   L1 and
//!   forbids the loads in flight to write Redis (an invalidation may have been missed), then
//!   subscribes again.
//! - **(Re)subscription**: any subscription established after the cache started serving (the
//!   first one too, when it came later than `build` waited for) clears L1 again, since
//!   announcements may have been missed before it.
//! - **Messages** are parsed strictly (`announce.rs` writes them): `i:` and 16 lowercase hex digits
//!   of an instance, `:`, the key; or `c:` and the instance. An instance ignores its own; anything
//!   else is counted as invalid and ignored.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use connpool::redis::RedisManager;
use futures::StreamExt;
use tokio::time::Instant;

use super::{Codec, Inner};

/// A message heard on the invalidation channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// Drop this key.
    Invalidate { instance: u64, key: &'a str },
    /// Clear everything.
    Clear { instance: u64 },
}

fn instance(hex: &str) -> Option<u64> {
    (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// Parses a message strictly; `None` for anything else.
pub(crate) fn parse(payload: &[u8]) -> Option<Message<'_>> {
    let text = std::str::from_utf8(payload).ok()?;
    if let Some(rest) = text.strip_prefix("i:") {
        let (id, key) = (rest.get(..16)?, rest.get(16..)?.strip_prefix(':')?);
        return Some(Message::Invalidate { instance: instance(id)?, key });
    }
    if let Some(id) = text.strip_prefix("c:") {
        return Some(Message::Clear { instance: instance(id)? });
    }
    None
}

impl<V, C> Inner<V, C>
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    fn heard(&self, payload: &[u8]) {
        match parse(payload) {
            Some(Message::Invalidate { instance, key }) if instance != self.instance => {
                self.epochs.bump(key);
                self.l1.remove(key);
                self.counters.received.fetch_add(1, Ordering::Relaxed);
            }
            Some(Message::Clear { instance }) if instance != self.instance => {
                self.forget_everything();
                self.counters.clears_received.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
            None => {
                self.counters.invalid_messages.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How the subscription is proven alive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub(crate) every: Duration,
    pub(crate) timeout: Duration,
}

/// Keeps the subscription up until the cache is dropped. `started` is answered at the first
/// subscription; if `build` stopped waiting for it, that subscription counts as late.
pub(crate) async fn run<V, C>(
    cache: Weak<Inner<V, C>>,
    manager: RedisManager,
    channel: String,
    heartbeat: Heartbeat,
    started: tokio::sync::oneshot::Sender<()>,
) where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    let backoff = connpool::RetryPolicy::Exponential {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(2),
        max_retries: u32::MAX,
    };
    let mut started = Some(started);
    let mut attempt = 0u32;
    loop {
        let subscribed = async {
            let mut pubsub = tokio::time::timeout(heartbeat.timeout, manager.pubsub()).await.ok()?.ok()?;
            tokio::time::timeout(heartbeat.timeout, pubsub.subscribe(&channel)).await.ok()?.ok()?;
            Some(pubsub)
        }
        .await;
        if let Some(pubsub) = subscribed {
            attempt = 0;
            {
                let Some(inner) = cache.upgrade() else { return };
                let on_time = started.take().is_some_and(|tx| tx.send(()).is_ok());
                if !on_time {
                    // Announcements may have been missed before this subscription.
                    inner.forget_everything();
                    inner.counters.resubscribed.fetch_add(1, Ordering::Relaxed);
                }
                inner.subscribed.store(true, Ordering::Release);
            }
            listen(&cache, pubsub, heartbeat).await;
            let Some(inner) = cache.upgrade() else { return };
            inner.subscribed.store(false, Ordering::Release);
            inner.forget_everything();
            inner.counters.subscription_losses.fetch_add(1, Ordering::Relaxed);
        }
        if cache.strong_count() == 0 {
            return;
        }
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(backoff.delay(attempt.min(30)).unwrap_or(Duration::from_secs(2))).await;
    }
}

/// Acts on the subscription's messages until it ends or its heartbeat goes unanswered.
async fn listen<V, C>(cache: &Weak<Inner<V, C>>, pubsub: redis::aio::PubSub, heartbeat: Heartbeat)
where
    V: Clone + Send + Sync + 'static,
    C: Codec<V>,
{
    let (mut sink, mut stream) = pubsub.split();
    let mut next_ping = Instant::now() + heartbeat.every;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                let Some(inner) = cache.upgrade() else { return };
                inner.heard(message.get_payload_bytes());
            }
            () = tokio::time::sleep_until(next_ping) => {
                // Messages wait in the stream meanwhile; a ping is answered in order with them.
                let pong = tokio::time::timeout(heartbeat.timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
                next_ping = Instant::now() + heartbeat.every;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_strictly() {
        let id = 0x0123_4567_89ab_cdef_u64;
        assert_eq!(
            parse(super::super::announce::invalidate_message(id, "user:1").as_bytes()),
            Some(Message::Invalidate { instance: id, key: "user:1" })
        );
        assert_eq!(parse(b"i:0123456789abcdef:"), Some(Message::Invalidate { instance: id, key: "" }));
        assert_eq!(
            parse(super::super::announce::clear_message(id).as_bytes()),
            Some(Message::Clear { instance: id })
        );
        for bad in [
            &b"0123456789abcdef:user:1"[..], // the old format, no kind
            b"i:0123456789ABCDEF:k",         // upper case
            b"i:0123456789abcde:k",          // 15 digits
            b"i:0123456789abcdef",           // no separator
            b"i:0123456789abcdefk",
            b"c:0123456789abcdef:extra",
            b"x:0123456789abcdef:k",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
