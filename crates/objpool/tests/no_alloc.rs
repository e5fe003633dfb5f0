//! Getting and returning an idle object allocates nothing.
//!
//! This binary counts allocations with `alloctrack` as its global allocator; the assertions
//! count the current thread only, so parallel tests do not disturb them.

use alloctrack::assert_no_alloc;

#[global_allocator]
static GLOBAL: alloctrack::Tracking = alloctrack::Tracking::system();

/// Rounds per loop: enough to show that nothing allocates, fewer under Miri (slow).
const ROUNDS: usize = if cfg!(miri) { 100 } else { 1000 };

#[test]
fn get_and_return_of_an_idle_object_allocates_nothing() {
    let pool = objpool::Pool::builder()
        .max_size(8)
        .pre_create(8)
        .reset(|v: &mut Vec<u8>| v.clear())
        .build(|| Vec::with_capacity(256))
        .unwrap();
    // The first get on a thread may set up its thread-local scan hint.
    drop(pool.try_get().unwrap());

    assert_no_alloc(|| {
        for i in 0..ROUNDS as u32 {
            let mut v = pool.try_get().unwrap();
            v.extend_from_slice(&i.to_le_bytes());
            drop(v);
            let w = pool.get().unwrap();
            drop(pool.get_timeout(std::time::Duration::from_secs(1)).unwrap());
            drop(w);
        }
    });

    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert_no_alloc(|| {
        for _ in 0..ROUNDS {
            let mut acquire = std::pin::pin!(pool.get_async());
            use std::future::Future;
            let std::task::Poll::Ready(Ok(guard)) = acquire.as_mut().poll(&mut cx) else {
                panic!("an idle object was there")
            };
            drop(guard);
        }
    });

    let buffers = objpool::BufferPoolBuilder::new(4096).max_size(2).pre_create(2).build().unwrap();
    drop(buffers.try_get().unwrap());
    assert_no_alloc(|| {
        for _ in 0..ROUNDS {
            use bytes::BufMut;
            buffers.try_get().unwrap().put_slice(b"payload");
        }
    });
}
