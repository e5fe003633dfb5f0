//! Getting and returning an idle object allocates nothing.
//!
//! This binary counts the allocations of each thread with its own global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

std::thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to `System` unchanged; counting touches only a const-initialised
// thread-local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

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

    let sync_path = allocations_in(|| {
        for i in 0..1000u32 {
            let mut v = pool.try_get().unwrap();
            v.extend_from_slice(&i.to_le_bytes());
            drop(v);
            let w = pool.get().unwrap();
            drop(pool.get_timeout(std::time::Duration::from_secs(1)).unwrap());
            drop(w);
        }
    });
    assert_eq!(sync_path, 0, "sync get/return allocated {sync_path} times");

    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let async_path = allocations_in(|| {
        for _ in 0..1000 {
            let mut acquire = std::pin::pin!(pool.get_async());
            use std::future::Future;
            let std::task::Poll::Ready(Ok(guard)) = acquire.as_mut().poll(&mut cx) else {
                panic!("an idle object was there")
            };
            drop(guard);
        }
    });
    assert_eq!(async_path, 0, "async get/return allocated {async_path} times");

    let buffers = objpool::BufferPoolBuilder::new(4096).max_size(2).pre_create(2).build().unwrap();
    drop(buffers.try_get().unwrap());
    let buffer_path = allocations_in(|| {
        for _ in 0..1000 {
            use bytes::BufMut;
            buffers.try_get().unwrap().put_slice(b"payload");
        }
    });
    assert_eq!(buffer_path, 0, "buffer get/return allocated {buffer_path} times");
}
