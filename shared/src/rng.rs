//! SplitMix64: small, fast, and the same on every platform (native and wasm32), so seeded
//! results (concept images, random attack starts) are reproducible everywhere.

#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A stream for `(seed, index)`, independent of the order streams are created in.
    pub fn new(seed: u64, index: u64) -> Self {
        let mut r = SplitMix(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next_u64();
        r
    }
    /// A stream for `(seed, a, b)` (e.g. seed, epoch, step).
    pub fn derive(seed: u64, a: u64, b: u64) -> Self {
        let mut s = SplitMix(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let x = s.next_u64() ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
        SplitMix(x)
    }
    /// The generator whose state is `state` (no mixing).
    pub fn from_state(state: u64) -> Self {
        SplitMix(state)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1), exactly representable.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick(&mut self, from: &[usize]) -> usize {
        from[self.below(from.len())]
    }
    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
