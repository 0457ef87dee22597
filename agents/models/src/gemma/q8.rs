//! Q8_0 matrices and the matrix–vector kernel that decoding spends most of its time in.
//!
//! A Q8_0 block holds 32 signed bytes and one scale. We keep the scales (f16, as in GGUF) and
//! the quants in two arrays, so a kernel converts eight scales with one instruction and streams
//! the quants without unpacking 34-byte records. Activations are quantised the same way, with
//! f32 scales.
//!
//! Decoding multiplies every weight matrix by one activation row, so speed is memory bandwidth
//! plus latency: the AVX2 kernel takes **four weight rows at a time** — four independent
//! accumulators, and each activation block is loaded once for the four rows. CPUs without
//! AVX2/FMA/F16C (and non-x86 targets) run a portable scalar kernel that gives the same sums.
#![allow(unsafe_code)] // The SIMD kernel's loads; each is bounds-checked by an assert on entry.

use half::f16;
use rayon::prelude::*;

/// Values per block.
pub(crate) const QK: usize = 32;

/// Scales appended after the last block, so the kernel may always read eight at a time.
const SCALE_PAD: usize = 8;

/// Fewest weight rows per rayon task (a multiple of the kernel's four): enough work to amortise
/// scheduling on the small matrices.
const MIN_ROWS_PER_TASK: usize = 32;

/// Tasks per pool thread for one matrix product: a few, so uneven threads still balance, but
/// not one per 32 rows of the 262,144-row output projection.
const TASKS_PER_THREAD: usize = 8;

/// Rows processed together by the SIMD kernel.
const GROUP: usize = 4;

/// Quantises `values` (a multiple of [`QK`] long) into `scales`/`quants`, GGML's way: the scale
/// is `max |x| / 127`, quants are `round(x / scale)`.
fn quantize_into(values: &[f32], scales: &mut [f32], quants: &mut [i8]) {
    for ((block, scale), q) in values.chunks(QK).zip(scales.iter_mut()).zip(quants.chunks_mut(QK)) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (q, &v) in q.iter_mut().zip(block) {
            *q = (v * inv).round().clamp(-127.0, 127.0) as i8;
        }
        *scale = d;
    }
}

/// A weight matrix `rows × cols` in Q8_0, row-major.
pub(crate) struct Q8Matrix {
    rows: usize,
    cols: usize,
    /// f16 bits, `rows * cols / 32` of them and [`SCALE_PAD`] zeros.
    scales: Vec<u16>,
    quants: Vec<i8>,
}

impl Q8Matrix {
    /// Takes GGUF Q8_0 bytes (per block: f16 scale, 32 quants) as they are.
    pub(crate) fn from_q8_0_bytes(rows: usize, cols: usize, bytes: &[u8]) -> Option<Self> {
        // Shapes come from the file's metadata: a corrupt one must not overflow.
        let blocks = rows.checked_mul(cols)? / QK;
        if !cols.is_multiple_of(QK) || blocks.checked_mul(2 + QK)? != bytes.len() {
            return None;
        }
        let mut scales = Vec::with_capacity(blocks + SCALE_PAD);
        let mut quants = Vec::with_capacity(rows * cols);
        for block in bytes.chunks_exact(2 + QK) {
            scales.push(u16::from_le_bytes([block[0], block[1]]));
            quants.extend(block[2..].iter().map(|&b| b as i8));
        }
        scales.resize(blocks + SCALE_PAD, 0);
        Some(Self { rows, cols, scales, quants })
    }

    /// Starts an empty matrix to be filled, in row order, by [`Q8Matrix::push_rows`].
    pub(crate) fn with_capacity(rows: usize, cols: usize) -> Option<Self> {
        if !cols.is_multiple_of(QK) || cols == 0 {
            return None;
        }
        Some(Self {
            rows: 0,
            cols,
            scales: Vec::with_capacity(rows * cols / QK + SCALE_PAD),
            quants: Vec::with_capacity(rows * cols),
        })
    }

    /// Quantises and appends whole rows of f32 values.
    pub(crate) fn push_rows(&mut self, values: &[f32]) {
        let n = values.len() / self.cols;
        let kb = self.cols / QK;
        let mut scales = vec![0f32; n * kb];
        let mut quants = vec![0i8; n * self.cols];
        quantize_into(&values[..n * self.cols], &mut scales, &mut quants);
        self.scales.truncate(self.rows * kb);
        self.scales.extend(scales.iter().map(|&d| f16::from_f32(d).to_bits()));
        self.scales.resize(self.scales.len() + SCALE_PAD, 0);
        self.quants.extend_from_slice(&quants);
        self.rows += n;
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.scales.len() * 2 + self.quants.len()
    }

    /// Row `row` dequantised into `out` (`cols` long).
    pub(crate) fn row_f32(&self, row: usize, out: &mut [f32]) {
        let kb = self.cols / QK;
        let scales = &self.scales[row * kb..(row + 1) * kb];
        let quants = &self.quants[row * self.cols..(row + 1) * self.cols];
        for ((dst, q), &d) in out.chunks_mut(QK).zip(quants.chunks(QK)).zip(scales) {
            let d = f16::from_bits(d).to_f32();
            for (o, &q) in dst.iter_mut().zip(q) {
                *o = f32::from(q) * d;
            }
        }
    }

    /// `x` (`m × cols`, row-major) times this matrix transposed: returns `(rows, m)` laid out
    /// row-major, i.e. output row `r` holds the `m` results of weight row `r`. Runs on the
    /// current rayon pool.
    pub(crate) fn matmul_t(&self, x: &[f32], m: usize) -> Vec<f32> {
        let xq = QRows::quantize(x, m, self.cols);
        let kernel = Kernel::detect();
        let kb = self.cols / QK;
        let mut out = vec![0f32; self.rows * m];
        let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
        let rows_per_task =
            self.rows.div_ceil(tasks).next_multiple_of(GROUP).max(MIN_ROWS_PER_TASK);
        out.par_chunks_mut(rows_per_task * m).enumerate().for_each(|(task, chunk)| {
            let first = task * rows_per_task;
            let n = chunk.len() / m;
            let mut r = 0;
            while r < n {
                let row = first + r;
                let take = GROUP.min(n - r);
                for i in 0..m {
                    let mut sums = [0f32; GROUP];
                    if take == GROUP {
                        sums = kernel.dot4(
                            kb,
                            &self.scales[row * kb..],
                            &self.quants[row * self.cols..(row + GROUP) * self.cols],
                            &xq.scales[i * kb..],
                            &xq.quants[i * self.cols..(i + 1) * self.cols],
                        );
                    } else {
                        for (g, sum) in sums.iter_mut().enumerate().take(take) {
                            let w = row + g;
                            *sum = dot_scalar(
                                &self.scales[w * kb..(w + 1) * kb],
                                &self.quants[w * self.cols..(w + 1) * self.cols],
                                &xq.scales[i * kb..(i + 1) * kb],
                                &xq.quants[i * self.cols..(i + 1) * self.cols],
                            );
                        }
                    }
                    for (g, &s) in sums.iter().enumerate().take(take) {
                        chunk[(r + g) * m + i] = s;
                    }
                }
                r += take;
            }
        });
        out
    }
}

/// Activation rows in Q8_0 with f32 scales.
struct QRows {
    /// `m * cols / 32` scales and [`SCALE_PAD`] zeros.
    scales: Vec<f32>,
    quants: Vec<i8>,
}

impl QRows {
    fn quantize(x: &[f32], m: usize, cols: usize) -> Self {
        let kb = cols / QK;
        let mut scales = vec![0f32; m * kb + SCALE_PAD];
        let mut quants = vec![0i8; m * cols];
        quantize_into(&x[..m * cols], &mut scales[..m * kb], &mut quants);
        Self { scales, quants }
    }
}

/// One weight row against one activation row, portable.
fn dot_scalar(w_scales: &[u16], w_quants: &[i8], x_scales: &[f32], x_quants: &[i8]) -> f32 {
    w_scales
        .iter()
        .zip(x_scales)
        .zip(w_quants.chunks_exact(QK).zip(x_quants.chunks_exact(QK)))
        .map(|((&wd, &xd), (wq, xq))| {
            let dot: i32 = wq.iter().zip(xq).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
            f16::from_bits(wd).to_f32() * xd * dot as f32
        })
        .sum()
}

/// The kernel chosen for this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// Anything else.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return Self::Avx2;
        }
        Self::Portable
    }

    /// A name for logs and the benchmark table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }

    /// Four consecutive weight rows (blocks from the start of `w_scales`/`w_quants`) against one
    /// activation row. `w_scales` and `x_scales` run past their rows (to the padding at least).
    fn dot4(
        self,
        kb: usize,
        w_scales: &[u16],
        w_quants: &[i8],
        x_scales: &[f32],
        x_quants: &[i8],
    ) -> [f32; GROUP] {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found AVX2, FMA and F16C on this CPU.
            Self::Avx2 => unsafe { avx2::dot4(kb, w_scales, w_quants, x_scales, x_quants) },
            _ => std::array::from_fn(|g| {
                dot_scalar(
                    &w_scales[g * kb..(g + 1) * kb],
                    &w_quants[g * kb * QK..(g + 1) * kb * QK],
                    &x_scales[..kb],
                    x_quants,
                )
            }),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{GROUP, QK, SCALE_PAD};
    use std::arch::x86_64::*;

    /// How far ahead of each weight row the kernel asks for memory. Without a prefetch one
    /// thread streamed the weights at ~60% of the machine's bandwidth; measured with `fenliu bench
    /// models` (decode tokens/s, 1 thread): 2.5 KB 60, 5 KB 74, 10 KB 81, 20 KB 68.
    const PREFETCH_BYTES: usize = 10 * 1024;

    /// Dot product of 32 signed bytes, as eight i32 partial sums converted to f32. `maddubs`
    /// needs an unsigned operand: |w| against y carrying w's sign. Quants stay within ±127,
    /// so the pairwise i16 sums cannot saturate.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn block_dot(w: __m256i, y: __m256i) -> __m256 {
        let abs_w = _mm256_sign_epi8(w, w);
        let signed_y = _mm256_sign_epi8(y, w);
        let pairs = _mm256_maddubs_epi16(abs_w, signed_y);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(x: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot4(
        kb: usize,
        w_scales: &[u16],
        w_quants: &[i8],
        x_scales: &[f32],
        x_quants: &[i8],
    ) -> [f32; GROUP] {
        // Every load below stays inside these bounds: scales are read eight at a time from a
        // block index below `kb` (so up to `kb - 1 + 8`), quants 32 bytes per block.
        assert!(w_scales.len() >= (GROUP - 1) * kb + kb - 1 + SCALE_PAD);
        assert!(x_scales.len() >= kb - 1 + SCALE_PAD);
        assert!(w_quants.len() >= GROUP * kb * QK && x_quants.len() >= kb * QK);
        let ws = w_scales.as_ptr();
        let wq = w_quants.as_ptr();
        let xq = x_quants.as_ptr();
        let mut acc = [_mm256_setzero_ps(); GROUP];
        let mut b = 0;
        while b < kb {
            let n = (kb - b).min(8);
            // SAFETY (all loads): within the bounds asserted above.
            let xd = unsafe { _mm256_loadu_ps(x_scales.as_ptr().add(b)) };
            // Combined scales of the next eight blocks, one vector per row. Each block's scale is
            // broadcast from it with a permute: storing them and reading them back one by one
            // stalls on store forwarding.
            let d: [__m256; GROUP] = std::array::from_fn(|g| {
                let half = unsafe { _mm_loadu_si128(ws.add(g * kb + b).cast()) };
                _mm256_mul_ps(_mm256_cvtph_ps(half), xd)
            });
            let mut step = |j: usize| {
                let y = unsafe { _mm256_loadu_si256(xq.add((b + j) * QK).cast()) };
                let lane = _mm256_set1_epi32(j as i32);
                for g in 0..GROUP {
                    // Prefetching is a hint: any address is allowed.
                    _mm_prefetch::<_MM_HINT_T0>(
                        wq.wrapping_add((g * kb + b + j) * QK + PREFETCH_BYTES).cast(),
                    );
                    let w = unsafe { _mm256_loadu_si256(wq.add((g * kb + b + j) * QK).cast()) };
                    let scale = _mm256_permutevar8x32_ps(d[g], lane);
                    acc[g] = _mm256_fmadd_ps(scale, block_dot(w, y), acc[g]);
                }
            };
            if n == 8 {
                // A constant trip count, so the loop unrolls and the lane indices are constants.
                for j in 0..8 {
                    step(j);
                }
            } else {
                for j in 0..n {
                    step(j);
                }
            }
            b += n;
        }
        [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i.wrapping_mul(2_654_435_761) ^ seed).wrapping_mul(40503);
                (h % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn reference(w: &[f32], x: &[f32], rows: usize, cols: usize, m: usize) -> Vec<f64> {
        let mut out = vec![0f64; rows * m];
        for r in 0..rows {
            for i in 0..m {
                out[r * m + i] = (0..cols)
                    .map(|c| f64::from(w[r * cols + c]) * f64::from(x[i * cols + c]))
                    .sum();
            }
        }
        out
    }

    #[test]
    fn kernels_agree_with_f64_on_odd_shapes() {
        // 20 and 13 blocks per row exercise the partial group of eight scales; 70 rows the
        // rows left over after groups of four; extreme and zero rows the quantiser.
        for (rows, cols, m) in [(64, 640, 1), (70, 416, 3), (4, 32, 2), (256, 2048, 1)] {
            let mut w = values(rows * cols, 7);
            w[..cols].iter_mut().for_each(|v| *v = 0.0);
            w[cols..2 * cols].iter_mut().enumerate().for_each(|(i, v)| {
                *v = if i % 2 == 0 { 127.0 } else { -128.0 };
            });
            let x = values(m * cols, 11);
            let mut q = Q8Matrix::with_capacity(rows, cols).unwrap();
            q.push_rows(&w[..rows / 2 * cols]);
            q.push_rows(&w[rows / 2 * cols..]);
            assert_eq!((q.rows(), q.cols()), (rows, cols));
            let want = reference(&w, &x, rows, cols, m);
            let got = q.matmul_t(&x, m);
            for (g, w) in got.iter().zip(&want) {
                let tol = 0.02 * w.abs().max(1.0) + 0.01 * (cols as f64).sqrt();
                assert!((f64::from(*g) - w).abs() < tol, "{rows}×{cols}: {g} vs {w}");
            }
            // The portable kernel gives the same sums up to rounding.
            let xq = QRows::quantize(&x, m, cols);
            let kb = cols / QK;
            let simd = Kernel::detect().dot4(
                kb,
                &q.scales,
                &q.quants[..4 * cols],
                &xq.scales,
                &xq.quants[..cols],
            );
            let portable = Kernel::Portable.dot4(
                kb,
                &q.scales,
                &q.quants[..4 * cols],
                &xq.scales,
                &xq.quants[..cols],
            );
            for (a, b) in simd.iter().zip(&portable) {
                assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn gguf_bytes_round_trip() {
        let mut bytes = Vec::new();
        for b in 0..4u8 {
            bytes.extend(f16::from_f32(0.5).to_bits().to_le_bytes());
            bytes.extend((0..QK as u8).map(|i| (i as i8 - 16 + b as i8) as u8));
        }
        let q = Q8Matrix::from_q8_0_bytes(2, 64, &bytes).unwrap();
        let mut row = vec![0f32; 64];
        q.row_f32(1, &mut row);
        assert_eq!(row[0], -7.0);
        assert_eq!(row[63], 9.0);
        assert!(Q8Matrix::from_q8_0_bytes(2, 64, &bytes[1..]).is_none());
        assert!(Q8Matrix::from_q8_0_bytes(2, 60, &bytes).is_none());
        assert!(Q8Matrix::from_q8_0_bytes(usize::MAX / 2, 64, &bytes).is_none());
        assert_eq!(q.bytes(), 4 * 2 + SCALE_PAD * 2 + 128);
    }
}
