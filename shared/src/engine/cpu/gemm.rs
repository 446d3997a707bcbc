//! `C += A B`: the one matrix product under the CPU engine's convolutions and dense layers.
//!
//! `C[i,j] += sum_p A[i,p] B[p,j]` for `i < m`, `j < n`, `p < k`, with `A` and `B` read through
//! strides ([`Mat`]) so that a transposed weight costs nothing, and `C` row-major.
//!
//! The layout is the one of BLIS and of llm.c's matmul: `B` is copied ("packed") in blocks of
//! `KC` rows into strips `NR` columns wide, `A` in blocks of `MC x KC` into strips `MR` rows
//! tall, and a micro-kernel keeps an `MR x NR` tile of `C` in registers while it runs over `KC`
//! products, reading both strips contiguously. Which micro-kernel runs is decided once per call:
//! AVX-512 (6 x 32) or AVX2 + FMA (6 x 16) when the x86-64 CPU has it, SSE (6 x 8) otherwise, simd128 (4 x 8) in a
//! wasm32 build with that feature, and plain arrays elsewhere. Every kernel sums over `p` in
//! increasing order, so results differ from the plain loops only by rounding (FMA or not).

/// A read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns (its element `(i, j)` is the
    /// stored `(j, i)`).
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }

    /// Panics with `what`'s name unless the view holds a `rows x cols` matrix (both non-zero).
    fn check(&self, what: &str, rows: usize, cols: usize) {
        assert!(
            self.data.len() > (rows - 1) * self.row_stride + (cols - 1) * self.col_stride,
            "{what} is too small for {rows} x {cols}"
        );
    }

    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// Rows of `B` packed per block: a `KC x NR` strip of `B` and an `MR x KC` strip of `A` stay in
/// L1 while the micro-kernel runs.
const KC: usize = 256;
/// Columns of `B` packed per block (`KC x NC` floats: 1 MiB, the L2 of current cores).
const NC: usize = 1024;
/// Rows of `A` per block, a multiple of every kernel's `MR`.
const MC: usize = 96;

/// `C += A B` for an `m x k` matrix `a`, a `k x n` matrix `b` and a row-major `c` whose rows
/// are `ldc` apart, with the best [`Kernel`] this CPU has.
pub fn gemm(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize) {
    gemm_with(Kernel::best(), m, n, k, a, b, c, ldc)
}

/// A micro-kernel: which instructions the product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// x86-64 with AVX-512 (F): 6 x 32 tiles, fused multiply-add.
    Avx512,
    /// x86-64 with AVX2 and FMA: 6 x 16 tiles, fused multiply-add.
    Avx2Fma,
    /// x86-64 baseline (SSE2): 6 x 8 tiles.
    Sse,
    /// wasm32 built with simd128: 4 x 8 tiles.
    Simd128,
    /// Plain arrays of four lanes, for any target.
    Portable,
}

impl Kernel {
    /// The fastest kernel this build and CPU can run, or the one `ADVLENS_GEMM_KERNEL` names
    /// (`avx512`, `avx2`, `sse`, `portable`: for comparing kernels on one machine, as oneDNN's
    /// `ONEDNN_MAX_CPU_ISA` does), decided once per process.
    ///
    /// # Panics
    /// If `ADVLENS_GEMM_KERNEL` names a kernel this build and CPU do not run.
    pub fn best() -> Self {
        static CHOSEN: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let fastest = Self::ALL.into_iter().find(|k| k.runs_here()).expect("the portable kernel runs everywhere");
            let Ok(name) = std::env::var("ADVLENS_GEMM_KERNEL") else { return fastest };
            Self::available()
                .into_iter()
                .find(|k| k.name() == name)
                .unwrap_or_else(|| panic!("ADVLENS_GEMM_KERNEL={name}: this CPU and build run {:?}", Self::available().iter().map(|k| k.name()).collect::<Vec<_>>()))
        })
    }

    /// The kernel's name in `ADVLENS_GEMM_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2Fma => "avx2",
            Self::Sse => "sse",
            Self::Simd128 => "simd128",
            Self::Portable => "portable",
        }
    }

    /// Every kernel this build and CPU can run, fastest first.
    pub fn available() -> Vec<Self> {
        Self::ALL.into_iter().filter(|k| k.runs_here()).collect()
    }

    /// The height of the kernel's tile (rows of `A` per strip).
    fn mr(self) -> usize {
        match self {
            Self::Avx512 | Self::Avx2Fma | Self::Sse => 6,
            Self::Simd128 | Self::Portable => 4,
        }
    }

    /// Every kernel, fastest first.
    const ALL: [Self; 5] = [Self::Avx512, Self::Avx2Fma, Self::Sse, Self::Simd128, Self::Portable];

    /// Whether this build and CPU have the kernel's instructions (no allocation: it is checked
    /// on every product; the CPU feature test is cached by the standard library).
    fn runs_here(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"),
            Self::Sse => cfg!(target_arch = "x86_64"),
            Self::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            Self::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// [`gemm`] with a chosen kernel.
///
/// # Panics
/// If `kernel` is not in [`Kernel::available`], or a matrix is too small for its shape.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    check_c(c, m, n, ldc);
    a.check("A", m, k);
    b.check("B", k, n);
    run(kernel, m, n, k, Source::Plain(a), b, c, ldc);
}

/// `A` packed once for several products with different `B`s: a convolution's weights, shared by
/// every image of a batch, are packed once per layer instead of once per image.
#[derive(Clone, Debug)]
pub struct PackedA {
    kernel: Kernel,
    m: usize,
    k: usize,
    /// Block `p0..p0+kc` of the columns starts at `p0 * m.next_multiple_of(MR)` and holds
    /// strips `MR` rows tall, as [`pack_a`] writes them for all `m` rows.
    data: Vec<f32>,
}

impl PackedA {
    /// `a` (`m x k`) packed for the best [`Kernel`] of this CPU.
    pub fn new(a: Mat, m: usize, k: usize) -> Self {
        Self::with(Kernel::best(), a, m, k)
    }

    /// `a` packed for `kernel`'s tile height.
    ///
    /// # Panics
    /// If `a` is too small for `m x k`.
    pub fn with(kernel: Kernel, a: Mat, m: usize, k: usize) -> Self {
        if m > 0 && k > 0 {
            a.check("A", m, k);
        }
        let rows = m.next_multiple_of(kernel.mr());
        let mut data = vec![0.0; rows * k];
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            let block = &mut data[p0 * rows..][..rows * kc];
            match kernel.mr() {
                6 => pack_a::<6>(a, 0, m, p0, kc, block),
                _ => pack_a::<4>(a, 0, m, p0, kc, block),
            }
        }
        Self { kernel, m, k, data }
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn cols(&self) -> usize {
        self.k
    }
}

/// `C += A B` with `A` packed beforehand ([`PackedA`]); `b` is `a.cols() x n`.
///
/// # Panics
/// If `a` was packed for a kernel this CPU does not run, or a matrix is too small.
pub fn gemm_packed(a: &PackedA, n: usize, b: Mat, c: &mut [f32], ldc: usize) {
    let (m, k) = (a.m, a.k);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    check_c(c, m, n, ldc);
    b.check("B", k, n);
    run(a.kernel, m, n, k, Source::Packed(a), b, c, ldc);
}

/// Panics unless `c` holds `m` rows of `n` values, `ldc` apart (`m`, `n` non-zero).
fn check_c(c: &[f32], m: usize, n: usize, ldc: usize) {
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "C is too small for {m} x {n} rows {ldc} apart");
}

/// Where the blocked product reads `A` from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// A matrix view, packed block by block as the product goes.
    Plain(Mat<'a>),
    /// Packed already, for the same kernel.
    Packed(&'a PackedA),
}

/// Runs the product on `kernel` once shapes are checked.
#[allow(clippy::too_many_arguments)]
fn run(kernel: Kernel, m: usize, n: usize, k: usize, a: Source, b: Mat, c: &mut [f32], ldc: usize) {
    assert!(
        kernel.runs_here(),
        "the {kernel:?} kernel does not run on this CPU or build"
    );
    // SAFETY: the kernel's instructions are available (checked above); shapes are checked by the
    // callers.
    unsafe {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => x86::gemm_avx512(m, n, k, a, b, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => x86::gemm_avx2(m, n, k, a, b, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse => blocked::<x86::Sse, 6>(m, n, k, a, b, c, ldc),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Kernel::Simd128 => blocked::<wasm::Simd128, 4>(m, n, k, a, b, c, ldc),
            Kernel::Portable => blocked::<Portable, 4>(m, n, k, a, b, c, ldc),
            #[allow(unreachable_patterns)]
            _ => unreachable!("checked by Kernel::available"),
        }
    }
}

/// A vector of `N` f32 lanes; a micro-kernel tile is `MR` rows of two vectors.
///
/// Implementations are `#[inline(always)]` so that they compile with the target features of the
/// function they end up in (`gemm_avx2`'s AVX2 + FMA).
trait Lanes: Copy {
    const N: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `self + a * b` (fused where the hardware has it).
    unsafe fn mul_add(self, a: Self, b: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
}

/// The blocked product with a `MR x 2N` micro-kernel over lanes `V`.
///
/// # Safety
/// The CPU must support `V`'s instructions; shapes are checked by [`gemm`].
#[inline(always)]
unsafe fn blocked<V: Lanes, const MR: usize>(
    m: usize,
    n: usize,
    k: usize,
    a: Source,
    b: Mat,
    c: &mut [f32],
    ldc: usize,
) {
    let nr = 2 * V::N;
    // Every packed entry the kernel reads is written by `pack_*` (zeros included), so the
    // buffers are reused between products and never cleared: a fresh zeroed buffer per call
    // cost more than the product itself on a first convolution's 9 taps.
    let kc_max = KC.min(k);
    let a_scratch = match a {
        Source::Plain(_) => MC.min(m.next_multiple_of(MR)) * kc_max,
        Source::Packed(_) => 0,
    };
    let mut scratch = Scratch::take(kc_max * NC.min(n.next_multiple_of(nr)), a_scratch);
    let (packed_b, packed_a) = (&mut scratch.b, &mut scratch.a);
    let mut edge = [0.0f32; 6 * 32];
    debug_assert!(MR * nr <= edge.len() && MC % MR == 0);
    for j0 in (0..n).step_by(NC) {
        let nc = NC.min(n - j0);
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            pack_b(b, p0, kc, j0, nc, nr, packed_b);
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                let block_a = match a {
                    Source::Plain(a) => {
                        pack_a::<MR>(a, i0, mc, p0, kc, packed_a);
                        packed_a.as_ptr()
                    }
                    Source::Packed(a) => a.data.as_ptr().add(p0 * m.next_multiple_of(MR) + i0 * kc),
                };
                for jr in (0..nc).step_by(nr) {
                    let cols = nr.min(nc - jr);
                    let strip_b = packed_b.as_ptr().add(jr * kc);
                    for ir in (0..mc).step_by(MR) {
                        let rows = MR.min(mc - ir);
                        let strip_a = block_a.add(ir * kc);
                        let corner = (i0 + ir) * ldc + j0 + jr;
                        if rows == MR && cols == nr {
                            tile::<V, MR>(kc, strip_a, strip_b, c.as_mut_ptr().add(corner), ldc);
                        } else {
                            // A partial tile: run the full kernel on a scratch tile, add the part
                            // that exists.
                            edge[..MR * nr].fill(0.0);
                            tile::<V, MR>(kc, strip_a, strip_b, edge.as_mut_ptr(), nr);
                            for r in 0..rows {
                                let out = &mut c[corner + r * ldc..][..cols];
                                out.iter_mut()
                                    .zip(&edge[r * nr..][..cols])
                                    .for_each(|(o, e)| *o += e);
                            }
                        }
                    }
                }
            }
        }
    }
    scratch.give_back();
}

/// The packing buffers of the last product on this thread, reused by the next one.
struct Scratch {
    b: Vec<f32>,
    a: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers (fresh ones if a product is already holding them), at least `b`
    /// and `a` floats long; grown entries are zero, the others hold old data.
    fn take(b: usize, a: usize) -> Self {
        let mut s = SCRATCH.with(|c| c.take()).unwrap_or(Scratch { b: Vec::new(), a: Vec::new() });
        if s.b.len() < b {
            s.b.resize(b, 0.0);
        }
        if s.a.len() < a {
            s.a.resize(a, 0.0);
        }
        s
    }

    fn give_back(self) {
        SCRATCH.with(|c| c.set(Some(self)));
    }
}

/// `C[0..MR, 0..2N] += sum_p a[p*MR + i] b[p*2N + j]`, the tile in registers.
#[inline(always)]
unsafe fn tile<V: Lanes, const MR: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    let n = V::N;
    let mut acc = [[V::zero(); 2]; MR];
    for p in 0..kc {
        let b0 = V::load(b.add(p * 2 * n));
        let b1 = V::load(b.add(p * 2 * n + n));
        let ap = a.add(p * MR);
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = V::splat(*ap.add(i));
            row[0] = row[0].mul_add(ai, b0);
            row[1] = row[1].mul_add(ai, b1);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let out = c.add(i * ldc);
        V::load(out).add(row[0]).store(out);
        V::load(out.add(n)).add(row[1]).store(out.add(n));
    }
}

/// `dst.copy_from_slice(src)` for the few floats of a packed row or an image row.
///
/// In wasm32 a slice copy is a `memory.copy`, which V8 runs as a call into the runtime: on rows
/// of 8 or 14 floats that call costs more than the copy, so the wasm build moves 4 lanes at a
/// time itself.
#[inline(always)]
pub(super) fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_short needs equal lengths");
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use std::arch::wasm32::{v128, v128_load, v128_store};
        let (mut d, mut s) = (dst.chunks_exact_mut(4), src.chunks_exact(4));
        for (d, s) in (&mut d).zip(&mut s) {
            // SAFETY: both chunks hold 4 floats; v128 loads and stores need no alignment.
            unsafe { v128_store(d.as_mut_ptr() as *mut v128, v128_load(s.as_ptr() as *const v128)) };
        }
        for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *d = *s;
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    dst.copy_from_slice(src);
}

/// Rows `p0..p0+kc`, columns `j0..j0+nc` of `b` as strips `nr` wide: strip `s` holds
/// `packed[s*kc*nr + p*nr + j] = b[p0+p, j0+s*nr+j]`, zero past column `nc`.
#[inline(always)]
fn pack_b(b: Mat, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, packed: &mut [f32]) {
    for (s, jr) in (0..nc).step_by(nr).enumerate() {
        let cols = nr.min(nc - jr);
        let strip = &mut packed[s * kc * nr..][..kc * nr];
        if b.row_stride == 1 && b.col_stride != 1 {
            // A transposed matrix (a dense layer's weights): read each column where it is
            // contiguous, write it down the strip.
            for j in 0..nr {
                if j < cols {
                    let src = &b.data[(j0 + jr + j) * b.col_stride + p0..][..kc];
                    for (p, &v) in src.iter().enumerate() {
                        strip[p * nr + j] = v;
                    }
                } else {
                    (0..kc).for_each(|p| strip[p * nr + j] = 0.0);
                }
            }
            continue;
        }
        for p in 0..kc {
            let dst = &mut strip[p * nr..][..nr];
            if b.col_stride == 1 {
                let first = (p0 + p) * b.row_stride + j0 + jr;
                copy_short(&mut dst[..cols], &b.data[first..][..cols]);
            } else {
                for (j, d) in dst[..cols].iter_mut().enumerate() {
                    *d = b.at(p0 + p, j0 + jr + j);
                }
            }
            dst[cols..].fill(0.0);
        }
    }
}

/// Rows `i0..i0+mc`, columns `p0..p0+kc` of `a` as strips `MR` tall: strip `s` holds
/// `packed[s*MR*kc + p*MR + i] = a[i0+s*MR+i, p0+p]`, zero past row `mc`.
#[inline(always)]
fn pack_a<const MR: usize>(a: Mat, i0: usize, mc: usize, p0: usize, kc: usize, packed: &mut [f32]) {
    for (s, ir) in (0..mc).step_by(MR).enumerate() {
        let rows = MR.min(mc - ir);
        let strip = &mut packed[s * MR * kc..][..MR * kc];
        if rows < MR {
            strip.fill(0.0);
        }
        if a.row_stride == 1 {
            // A transposed matrix: the strip's rows are side by side in memory at every `p`.
            for p in 0..kc {
                let src = &a.data[(p0 + p) * a.col_stride + i0 + ir..][..rows];
                copy_short(&mut strip[p * MR..][..rows], src);
            }
            continue;
        }
        for i in 0..rows {
            let row = i0 + ir + i;
            if a.col_stride == 1 {
                let src = &a.data[row * a.row_stride + p0..][..kc];
                for (p, &v) in src.iter().enumerate() {
                    strip[p * MR + i] = v;
                }
            } else {
                for p in 0..kc {
                    strip[p * MR + i] = a.at(row, p0 + p);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{blocked, Lanes, Mat, Source};
    use std::arch::x86_64::*;

    /// The blocked product compiled for AVX2 + FMA: 6 x 16 tiles in 12 of the 16 ymm registers.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_avx2(
        m: usize,
        n: usize,
        k: usize,
        a: Source,
        b: Mat,
        c: &mut [f32],
        ldc: usize,
    ) {
        blocked::<Avx, 6>(m, n, k, a, b, c, ldc)
    }

    /// The blocked product compiled for AVX-512: 6 x 32 tiles in 12 of the 32 zmm registers
    /// (the AVX2 kernel's shape with vectors twice as wide).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gemm_avx512(
        m: usize,
        n: usize,
        k: usize,
        a: Source,
        b: Mat,
        c: &mut [f32],
        ldc: usize,
    ) {
        blocked::<Avx512, 6>(m, n, k, a, b, c, ldc)
    }

    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    impl Lanes for Avx512 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(_mm512_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx512(_mm512_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn mul_add(self, a: Self, b: Self) -> Self {
            Avx512(_mm512_fmadd_ps(a.0, b.0, self.0))
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Avx512(_mm512_add_ps(self.0, b.0))
        }
    }

    #[derive(Clone, Copy)]
    pub struct Avx(__m256);

    impl Lanes for Avx {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx(_mm256_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx(_mm256_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn mul_add(self, a: Self, b: Self) -> Self {
            Avx(_mm256_fmadd_ps(a.0, b.0, self.0))
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Avx(_mm256_add_ps(self.0, b.0))
        }
    }

    /// SSE2, part of every x86-64 CPU: 6 x 8 tiles, multiply then add.
    #[derive(Clone, Copy)]
    pub struct Sse(__m128);

    impl Lanes for Sse {
        const N: usize = 4;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Sse(_mm_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Sse(_mm_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Sse(_mm_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn mul_add(self, a: Self, b: Self) -> Self {
            Sse(_mm_add_ps(self.0, _mm_mul_ps(a.0, b.0)))
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Sse(_mm_add_ps(self.0, b.0))
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::Lanes;
    use std::arch::wasm32::*;

    /// WebAssembly's 128-bit SIMD: 4 x 8 tiles (8 accumulators leave the engine's register
    /// allocator room on a 16-register host), multiply then add.
    #[derive(Clone, Copy)]
    pub struct Simd128(v128);

    impl Lanes for Simd128 {
        const N: usize = 4;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Simd128(f32x4_splat(0.0))
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Simd128(f32x4_splat(x))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Simd128(v128_load(p as *const v128))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            v128_store(p as *mut v128, self.0)
        }
        #[inline(always)]
        unsafe fn mul_add(self, a: Self, b: Self) -> Self {
            Simd128(f32x4_add(self.0, f32x4_mul(a.0, b.0)))
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Simd128(f32x4_add(self.0, b.0))
        }
    }
}

/// Lanes as plain arrays, for targets without a kernel of their own.
#[derive(Clone, Copy)]
struct Portable([f32; 4]);

impl Lanes for Portable {
    const N: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Portable([0.0; 4])
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Portable([x; 4])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(std::ptr::read_unaligned(p as *const [f32; 4]))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        std::ptr::write_unaligned(p as *mut [f32; 4], self.0)
    }
    #[inline(always)]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] + a.0[l] * b.0[l]))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] + b.0[l]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    /// `C += A B` in f64, one output at a time.
    fn reference(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: &mut [f32], ldc: usize) {
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k).map(|p| a.at(i, p) as f64 * b.at(p, j) as f64).sum();
                c[i * ldc + j] = (c[i * ldc + j] as f64 + sum) as f32;
            }
        }
    }

    fn random(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    /// Shapes around every block edge (MR, NR, KC, MC, NC), with transposed operands, a wider
    /// `C` and a non-zero starting `C`, on every kernel this machine runs, with `A` packed as
    /// the product goes and packed beforehand: each output within 1e-5 (relative to the sum of the
    /// magnitudes of its products) of the f64 reference.
    #[test]
    fn matches_the_reference_around_every_block_edge() {
        let mut rng = Rng::new(17);
        let shapes = [
            (1, 1, 1),
            (1, 7, 3),
            (5, 1, 9),
            (6, 16, 1),
            (6, 32, 2),
            (7, 17, 5),
            (7, 65, 4),
            (13, 33, 257),
            (97, 40, 31),
            (4, 1025, 3),
            (2, 9, 600),
            (64, 784, 9),
        ];
        for (case, &(m, n, k)) in shapes.iter().enumerate() {
            let (ta, tb) = (case % 2 == 1, case % 3 == 2);
            let (a, b) = (random(&mut rng, m * k), random(&mut rng, k * n));
            let a = if ta {
                Mat::transposed(&a, m)
            } else {
                Mat::rows(&a, k)
            };
            let b = if tb {
                Mat::transposed(&b, k)
            } else {
                Mat::rows(&b, n)
            };
            let ldc = n + case % 4;
            let start = random(&mut rng, m * ldc);
            let mut want = start.clone();
            reference(m, n, k, a, b, &mut want, ldc);
            let runs = Kernel::available().into_iter().flat_map(|kernel| [(kernel, false), (kernel, true)]);
            for (kernel, prepacked) in runs {
                let mut got = start.clone();
                if prepacked {
                    gemm_packed(&PackedA::with(kernel, a, m, k), n, b, &mut got, ldc);
                } else {
                    gemm_with(kernel, m, n, k, a, b, &mut got, ldc);
                }
                let kernel = format!("{kernel:?}{}", if prepacked { " (A packed first)" } else { "" });
                for i in 0..m {
                    for j in 0..ldc {
                        let at = i * ldc + j;
                        if j >= n {
                            assert_eq!(
                                got[at], start[at],
                                "{kernel} ({m},{n},{k}): wrote past column n at ({i},{j})"
                            );
                            continue;
                        }
                        let scale: f32 =
                            1.0 + (0..k).map(|p| (a.at(i, p) * b.at(p, j)).abs()).sum::<f32>();
                        let err = (got[at] - want[at]).abs() / scale;
                        assert!(err < 1e-5, "{kernel} ({m},{n},{k}) ta={ta} tb={tb}: C[{i},{j}] = {} want {} (err {err:e})", got[at], want[at]);
                    }
                }
            }
        }
    }

    #[test]
    fn empty_products_leave_c_alone() {
        let mut c = vec![1.0; 6];
        gemm(2, 3, 0, Mat::rows(&[], 0), Mat::rows(&[], 3), &mut c, 3);
        assert_eq!(c, vec![1.0; 6]);
    }

    #[test]
    fn every_build_has_a_kernel_and_the_portable_one() {
        let kernels = Kernel::available();
        assert_eq!(kernels.last(), Some(&Kernel::Portable));
        if std::env::var_os("ADVLENS_GEMM_KERNEL").is_none() {
            assert_eq!(Kernel::best(), kernels[0]);
        }
        #[cfg(target_arch = "x86_64")]
        assert!(kernels.contains(&Kernel::Sse));
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        assert_eq!(Kernel::best(), Kernel::Simd128);
    }
}
