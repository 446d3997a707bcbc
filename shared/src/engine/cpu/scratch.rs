//! Memory the CPU engine reuses from call to call for its activations and work buffers.
//!
//! Natively, glibc serves an allocation above its mmap threshold (a few MB at most) with fresh
//! pages from the kernel and hands them back when it is freed, or trims its heap when the top
//! of it is free: so each call page-faulted its activations in again. In `mnist-small`'s
//! batch-64 forward that was a quarter of the time (`perf`: `exc_page_fault`, `clear_page`
//! and the memory cgroup's locks), 7.3 ms against 4.0 ms with `MALLOC_MMAP_THRESHOLD_` set,
//! which a library cannot set for the program using it. So buffers of [`MIN_LEN`] values or
//! more are taken from, and given back to, a small per-thread pool.
//!
//! In wasm32 the allocator never returns memory to the host and reuses what is freed, and the
//! explorer's memory budget counts what a pool would keep: there [`zeroed`] is `vec![0.0; n]`
//! and [`recycle`] drops.

/// Buffers shorter than this (64 KiB) are left to the allocator, which serves them from its heap.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub const MIN_LEN: usize = 1 << 14;

#[cfg(not(target_arch = "wasm32"))]
mod pool {
    use std::cell::RefCell;

    /// At most this many buffers, and this many values in all (256 MiB), are kept per thread.
    const MAX_KEPT: usize = 32;
    const MAX_VALUES: usize = 1 << 26;

    thread_local! {
        static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    }

    /// The smallest kept buffer that holds `len` values, if any.
    pub fn take(len: usize) -> Option<Vec<f32>> {
        FREE.with_borrow_mut(|free| {
            let best = free.iter().enumerate().filter(|(_, b)| b.capacity() >= len).min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i)?;
            Some(free.swap_remove(best))
        })
    }

    pub fn keep(buffer: Vec<f32>) {
        FREE.with_borrow_mut(|free| {
            free.push(buffer);
            // Over the limits, the smallest buffers go first: the large ones are the costly
            // ones to fault in again.
            while free.len() > MAX_KEPT || free.iter().map(Vec::capacity).sum::<usize>() > MAX_VALUES {
                let smallest = free.iter().enumerate().min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i).expect("not empty");
                free.swap_remove(smallest);
            }
        })
    }

    #[cfg(test)]
    pub fn kept() -> usize {
        FREE.with_borrow(Vec::len)
    }
}

/// `len` zeros, in a reused buffer where one is free: the same as `vec![0.0; len]`.
pub fn zeroed(len: usize) -> Vec<f32> {
    filled(len, 0.0)
}

/// `len` copies of `value`, in a reused buffer where one is free: `vec![value; len]`.
pub fn filled(len: usize, value: f32) -> Vec<f32> {
    #[cfg(not(target_arch = "wasm32"))]
    if len >= MIN_LEN {
        if let Some(mut buffer) = pool::take(len) {
            buffer.clear();
            buffer.resize(len, value);
            return buffer;
        }
    }
    vec![value; len]
}

/// An empty buffer with room for `len` values, reused where one is free.
pub fn with_capacity(len: usize) -> Vec<f32> {
    #[cfg(not(target_arch = "wasm32"))]
    if len >= MIN_LEN {
        if let Some(mut buffer) = pool::take(len) {
            buffer.clear();
            return buffer;
        }
    }
    Vec::with_capacity(len)
}

/// `values` (`len` of them, or about) collected into a buffer from [`with_capacity`].
pub fn collect(len: usize, values: impl IntoIterator<Item = f32>) -> Vec<f32> {
    let mut out = with_capacity(len);
    out.extend(values);
    out
}

/// Gives `buffer` back for a later [`zeroed`] (small buffers are simply dropped).
pub fn recycle(buffer: Vec<f32>) {
    #[cfg(not(target_arch = "wasm32"))]
    if buffer.capacity() >= MIN_LEN {
        pool::keep(buffer);
    }
    #[cfg(target_arch = "wasm32")]
    drop(buffer);
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// A reused buffer is all zeros again, at its new length, and is the same memory.
    #[test]
    fn reused_buffers_come_back_zeroed_at_their_new_length() {
        let mut a = zeroed(MIN_LEN * 2);
        a.iter_mut().for_each(|v| *v = 7.0);
        let address = a.as_ptr();
        recycle(a);
        let b = zeroed(MIN_LEN + 5);
        assert_eq!(b.len(), MIN_LEN + 5);
        assert!(b.iter().all(|&v| v == 0.0), "a reused buffer kept old values");
        assert_eq!(b.as_ptr(), address, "the kept buffer was not reused");
        recycle(b);
        // Too large for any kept buffer: a fresh one.
        let c = zeroed(MIN_LEN * 3);
        assert!(c.iter().all(|&v| v == 0.0));
        recycle(c);
    }

    /// Engine calls whose buffers come from the pool (here first filled with NaN, as a buffer
    /// an earlier call left behind could hold anything) give the bits of the same calls in a
    /// fresh thread, whose pool is empty: forward and input gradient of every reference case,
    /// at batch 64 (activations large enough to be pooled) and at batch 5 in between.
    #[test]
    fn engine_calls_on_reused_buffers_give_a_fresh_threads_bits() {
        use crate::engine::cpu::CpuEngine;
        use crate::engine::objective::Objective;
        use crate::testing::{fresh_seed, random_bundle, random_images, reference_cases, Rng};
        use std::sync::Arc;

        let seed = fresh_seed();
        let mut rng = Rng::new(seed);
        let mut pooled = 0;
        for (name, spec) in reference_cases() {
            let bundle = Arc::new(random_bundle(&mut rng, spec));
            let [c, h, w] = bundle.input_shape();
            let (many, few) = (random_images(&mut rng, [64, c, h, w]), random_images(&mut rng, [5, c, h, w]));
            let run = move |engine: CpuEngine, many: crate::Tensor, few: crate::Tensor| {
                let objective = Objective::CrossEntropy { target: 1 };
                let first = engine.forward(&many).unwrap().into_data();
                let gradient = engine.gradient(&many, &objective, &[]).unwrap().input.into_data();
                let small = engine.gradient(&few, &objective, &[]).unwrap().input.into_data();
                (first, gradient, small, engine.forward(&many).unwrap().into_data())
            };
            for len in [MIN_LEN, 3 * MIN_LEN, 40 * MIN_LEN] {
                recycle(vec![f32::NAN; len]);
            }
            let warm = run(CpuEngine::new(bundle.clone()), many.clone(), few.clone());
            let fresh = std::thread::spawn(move || run(CpuEngine::new(bundle), many, few)).join().unwrap();
            assert_eq!(warm.0, fresh.0, "{name} (seed {seed}): forward");
            assert_eq!(warm.1, fresh.1, "{name} (seed {seed}): input gradient");
            assert_eq!(warm.2, fresh.2, "{name} (seed {seed}): input gradient at batch 5");
            assert_eq!(warm.3, fresh.0, "{name} (seed {seed}): the second forward");
            pooled += pool::kept();
        }
        assert!(pooled > 0, "no call pooled a buffer: the test does not reach the pool");
    }

    /// The pool stays bounded however many buffers come back; small ones are not kept.
    #[test]
    fn the_pool_keeps_a_bounded_number_of_large_buffers() {
        for _ in 0..100 {
            recycle(vec![1.0; MIN_LEN]);
            recycle(vec![1.0; 16]);
        }
        assert!(pool::kept() <= 32, "{} buffers kept", pool::kept());
        assert!(pool::kept() > 0);
    }
}
