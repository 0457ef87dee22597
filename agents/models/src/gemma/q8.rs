//! Q8_0 weight matrices and the integer dot-product kernels that multiply them.
//!
//! Q8_0 is GGML's block format: 32 signed 8-bit values sharing one f16 scale. A [`Q8Matrix`] keeps
//! the values and the scales in two separate arrays (so 64 values — two blocks — are one aligned
//! AVX-512 load), with every weight stored offset by 128 as an unsigned byte: `_mm512_dpbusd_epi32`
//! (AVX-512 VNNI) multiplies unsigned by signed bytes, and `Σ (w + 128)·x = Σ w·x + 128·Σ x`, where
//! `128·Σ x` belongs to the activations: it is computed once per activation block and subtracted
//! exactly, in integers, by starting each block's accumulator at `-128·Σ x`.
//!
//! Activations are quantised per row to Q8_0 with an f32 scale ([`QRows`]) once per matrix
//! multiplication and reused for every weight row.
//!
//! Kernels, chosen once at run time:
//! - **AVX-512 VNNI** (`avx512f`, `bw`, `vl`, `vnni`): one weight row against up to four
//!   activation rows per pass, so each loaded weight block meets every activation row while it is
//!   in a register (prompt processing); `unsafe` is confined to its loads.
//! - **Portable**: the same arithmetic in plain Rust, for every other CPU; also the reference the
//!   SIMD kernel is tested against.

use std::sync::OnceLock;

/// Values per block.
pub(crate) const QK: usize = 32;

/// Bytes of one GGML Q8_0 block: an f16 scale then 32 signed bytes.
const BLOCK_BYTES: usize = 2 + QK;

/// A `rows × cols` weight matrix in Q8_0 blocks, row-major, values offset by 128.
pub(crate) struct Q8Matrix {
    rows: usize,
    cols: usize,
    /// `rows × cols` bytes: the signed weight plus 128.
    qs: Vec<u8>,
    /// `rows × cols / 32` block scales, f16 bits.
    d: Vec<u16>,
}

/// Activation rows quantised to Q8_0 (f32 scales), padded for the kernels.
pub(crate) struct QRows {
    /// Rows.
    m: usize,
    /// Blocks per row.
    kb: usize,
    /// Blocks per row rounded up to a pair (one 64-byte load).
    kb_pair: usize,
    /// `m × kb_pair × 32` signed values, zero in the padding.
    qs: Vec<i8>,
    /// `m × kb_pair × 8`: per pair of blocks, the first block's scale 8 times then the second's.
    d_pairs: Vec<f32>,
    /// `m × kb_pair × 8`: per pair of blocks, the integer accumulators' starting values:
    /// `-128 · Σ values` of each block in lanes 0 and 8, zero elsewhere.
    corr: Vec<i32>,
    /// `m × kb`: per block scale (portable kernel).
    d: Vec<f32>,
    /// `m × kb`: per block `Σ values` (portable kernel).
    sums: Vec<i32>,
}

/// Exact f16 → f32 (scales are finite; infinities and NaN map through as well).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        0 => sign * man as f32 * f32::powi(2.0, -24),
        31 if man == 0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => f32::from_bits((u32::from(h & 0x8000) << 16) | ((exp + 112) << 23) | (man << 13)),
    }
}

/// `v` (≥ 0, finite) rounded to the nearest value with an f16's 11 significant bits (ties to
/// even), as GGML stores activation scales. Values below f16's normal range keep 11 bits too;
/// the difference is far below the quantisation noise.
fn round_to_f16_precision(v: f32) -> f32 {
    let bits = v.to_bits();
    let round = 0x0fff + ((bits >> 13) & 1);
    f32::from_bits(bits.wrapping_add(round) & !0x1fff)
}

impl Q8Matrix {
    /// Builds a matrix from GGML Q8_0 bytes (`rows × cols / 32` blocks of 34 bytes).
    pub(crate) fn from_ggml_q8_0(rows: usize, cols: usize, bytes: &[u8]) -> Result<Self, String> {
        if cols == 0 || !cols.is_multiple_of(QK) {
            return Err(format!("row length {cols} is not a positive multiple of {QK}"));
        }
        let blocks = rows * cols / QK;
        if bytes.len() != blocks * BLOCK_BYTES {
            return Err(format!("{} bytes for {rows}×{cols} Q8_0", bytes.len()));
        }
        let mut qs = Vec::with_capacity(rows * cols);
        let mut d = Vec::with_capacity(blocks);
        for block in bytes.chunks_exact(BLOCK_BYTES) {
            d.push(u16::from_le_bytes([block[0], block[1]]));
            qs.extend(block[2..].iter().map(|&b| b ^ 0x80));
        }
        Ok(Self { rows, cols, qs, d })
    }

    /// Appends more rows in GGML Q8_0 bytes (loading a large tensor a slice at a time).
    pub(crate) fn extend_ggml_q8_0(&mut self, bytes: &[u8]) -> Result<(), String> {
        let more =
            Self::from_ggml_q8_0(bytes.len() / BLOCK_BYTES * QK / self.cols, self.cols, bytes)?;
        self.rows += more.rows;
        self.qs.extend_from_slice(&more.qs);
        self.d.extend_from_slice(&more.d);
        Ok(())
    }

    /// Output rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Input width.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.qs.len() + 2 * self.d.len()
    }

    /// Row `r` dequantised into `out` (`cols` values). `r` must be below [`Q8Matrix::rows`].
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let kb = self.cols / QK;
        let qs = &self.qs[r * self.cols..(r + 1) * self.cols];
        let d = &self.d[r * kb..(r + 1) * kb];
        for ((dst, src), &scale) in out.chunks_mut(QK).zip(qs.chunks(QK)).zip(d) {
            let scale = f16_to_f32(scale);
            for (o, &q) in dst.iter_mut().zip(src) {
                *o = f32::from((q ^ 0x80) as i8) * scale;
            }
        }
    }

    /// `out[i * x.m + j]` = row `first + i` · activation row `j`, for `out.len() / x.m` rows
    /// from `first`. Panics if the shapes disagree (callers check them).
    pub(crate) fn dot_rows(&self, first: usize, x: &QRows, out: &mut [f32]) {
        assert_eq!(x.kb * QK, self.cols, "activation width");
        assert!(x.m > 0 && out.len().is_multiple_of(x.m), "output shape");
        let n_rows = out.len() / x.m;
        assert!(first + n_rows <= self.rows, "rows out of range");
        let kernel = kernel();
        for (i, row_out) in out.chunks_mut(x.m).enumerate() {
            let r = first + i;
            let kb = self.cols / QK;
            let wq = &self.qs[r * self.cols..(r + 1) * self.cols];
            let wd = &self.d[r * kb..(r + 1) * kb];
            let mut j = 0;
            while j < x.m {
                let n = (x.m - j).min(4);
                let dst = &mut row_out[j..j + n];
                match kernel {
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx512Vnni => avx512::dot(wq, wd, x, j, dst),
                    Kernel::Portable => portable_dot(wq, wd, x, j, dst),
                }
                j += n;
            }
        }
    }
}

impl QRows {
    /// Quantises `m` rows of `k` values (`xs.len() == m · k`, `k` a multiple of 32).
    pub(crate) fn quantize(xs: &[f32], k: usize) -> Self {
        assert!(k > 0 && k.is_multiple_of(QK) && xs.len().is_multiple_of(k), "activation shape");
        let m = xs.len() / k;
        let kb = k / QK;
        let kb_pair = kb.div_ceil(2) * 2;
        let mut q = Self {
            m,
            kb,
            kb_pair,
            qs: vec![0; m * kb_pair * QK],
            d_pairs: vec![0.0; m * kb_pair * 8],
            corr: vec![0; m * kb_pair * 8],
            d: vec![0.0; m * kb],
            sums: vec![0; m * kb],
        };
        for (row, x) in xs.chunks_exact(k).enumerate() {
            for (b, block) in x.chunks_exact(QK).enumerate() {
                let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                // As GGML: values from the exact scale, the scale itself kept at f16 precision.
                let d = round_to_f16_precision(d);
                let dst = &mut q.qs[(row * kb_pair + b) * QK..][..QK];
                let mut sum = 0i32;
                for (o, &v) in dst.iter_mut().zip(block) {
                    // |v · id| ≤ 127 by construction; `as` saturates NaN to 0.
                    *o = (v * id).round() as i8;
                    sum += i32::from(*o);
                }
                let pair = &mut q.d_pairs[(row * kb_pair + b / 2 * 2) * 8..][..16];
                pair[(b % 2) * 8..(b % 2) * 8 + 8].fill(d);
                q.corr[(row * kb_pair + b / 2 * 2) * 8 + (b % 2) * 8] = -128 * sum;
                q.d[row * kb + b] = d;
                q.sums[row * kb + b] = sum;
            }
        }
        q
    }
}

/// The dot-product kernel this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    Portable,
}

fn kernel() -> Kernel {
    static KERNEL: OnceLock<Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("FENLIU_Q8_PORTABLE").is_none() && avx512::available() {
            return Kernel::Avx512Vnni;
        }
        Kernel::Portable
    })
}

/// Name of the kernel in use, for logs and the benchmark.
pub(crate) fn kernel_name() -> &'static str {
    match kernel() {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => "avx512-vnni",
        Kernel::Portable => "portable",
    }
}

/// Weight row (`wq`, `wd`) against activation rows `first..first + out.len()` of `x`.
fn portable_dot(wq: &[u8], wd: &[u16], x: &QRows, first: usize, out: &mut [f32]) {
    for (n, o) in out.iter_mut().enumerate() {
        let row = first + n;
        let xq = &x.qs[row * x.kb_pair * QK..];
        let mut acc = 0f32;
        for (b, &scale) in wd.iter().enumerate() {
            let w = &wq[b * QK..(b + 1) * QK];
            let v = &xq[b * QK..(b + 1) * QK];
            let dot: i32 = w.iter().zip(v).map(|(&w, &v)| i32::from(w) * i32::from(v)).sum();
            let dot = dot - 128 * x.sums[row * x.kb + b];
            acc += f16_to_f32(scale) * x.d[row * x.kb + b] * dot as f32;
        }
        *o = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The AVX-512 VNNI kernel. `unsafe` only for its loads, whose bounds are checked up front.
    #![allow(unsafe_code)]

    use std::arch::x86_64::*;

    use super::{QK, QRows};

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
    }

    /// Safe entry: checks the shapes, then runs the kernel for 1–4 activation rows.
    pub(super) fn dot(wq: &[u8], wd: &[u16], x: &QRows, first: usize, out: &mut [f32]) {
        let kb = wd.len();
        assert!(available(), "avx512 kernel on a CPU without it");
        assert!(kb == x.kb && wq.len() == kb * QK, "weight row shape");
        assert!((1..=4).contains(&out.len()) && first + out.len() <= x.m, "activation rows");
        // SAFETY: the CPU supports avx512f/bw/vl/vnni (checked above; the caller chose this kernel
        // after the same detection), and the shapes the kernel's loads rely on were just checked.
        unsafe {
            match out.len() {
                1 => rows::<1>(wq, wd, x, first, out),
                2 => rows::<2>(wq, wd, x, first, out),
                3 => rows::<3>(wq, wd, x, first, out),
                _ => rows::<4>(wq, wd, x, first, out),
            }
        }
    }

    /// One weight row against `N` activation rows starting at `first`.
    ///
    /// # Safety
    /// The CPU must support avx512f, avx512bw, avx512vl and avx512vnni; `wq.len() == 32 · wd.len()`,
    /// `wd.len() == x.kb`, `first + N <= x.m`, `out.len() == N`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const N: usize>(
        wq: &[u8],
        wd: &[u16],
        x: &QRows,
        first: usize,
        out: &mut [f32],
    ) {
        let kb = wd.len();
        let mut acc = [_mm512_setzero_ps(); N];
        // Lane l of a pair's scale vector takes block l / 8 of the pair.
        let half = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut chunk = 0;
        while chunk < kb {
            let blocks = (kb - chunk).min(16);
            let mask: __mmask16 = if blocks == 16 { 0xffff } else { (1u16 << blocks) - 1 };
            // SAFETY: `mask` covers scales `chunk..chunk + blocks`, all inside `wd`.
            let scales = _mm512_cvtph_ps(unsafe {
                _mm256_maskz_loadu_epi16(mask, wd.as_ptr().add(chunk).cast())
            });
            let mut b = 0;
            while b < blocks {
                let block = chunk + b;
                // Both blocks of the pair, or only the first when the row ends.
                let bytes: __mmask64 = if b + 1 < blocks { u64::MAX } else { u64::from(u32::MAX) };
                // SAFETY: the mask covers at most the two blocks `block`, `block + 1` < kb.
                let w =
                    unsafe { _mm512_maskz_loadu_epi8(bytes, wq.as_ptr().add(block * QK).cast()) };
                let idx = _mm512_add_epi32(half, _mm512_set1_epi32(b as i32));
                let ws = _mm512_permutexvar_ps(idx, scales);
                for (n, acc) in acc.iter_mut().enumerate() {
                    let row = first + n;
                    // SAFETY: activation rows are padded to `kb_pair` blocks (zeros), and
                    // `block + 1 < kb_pair`; `d_pairs` and `corr` hold 16 lanes per padded pair.
                    let (xv, xd, xc) = unsafe {
                        let at = row * x.kb_pair + block;
                        (
                            _mm512_loadu_si512(x.qs.as_ptr().add(at * QK).cast()),
                            _mm512_loadu_ps(x.d_pairs.as_ptr().add(at * 8)),
                            _mm512_loadu_si512(x.corr.as_ptr().add(at * 8).cast()),
                        )
                    };
                    // Σ (w + 128)·x − 128·Σ x = Σ w·x per block, exactly, in lanes 0–7 / 8–15.
                    let dot = _mm512_dpbusd_epi32(xc, w, xv);
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws, xd), *acc);
                }
                b += 2;
            }
            chunk += 16;
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            *o = _mm512_reduce_add_ps(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator (xorshift) so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn f32(&mut self) -> f32 {
            (self.next() % 20001) as f32 / 10000.0 - 1.0
        }
    }

    /// GGML Q8_0 bytes of random blocks, with extreme values and zero scales mixed in.
    fn random_ggml(rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
        let mut bytes = Vec::new();
        for b in 0..rows * cols / QK {
            let scale: u16 = match b % 7 {
                0 => 0,                                     // zero scale
                1 => 0x3c00,                                // 1.0
                2 => 0x0001,                                // smallest subnormal
                _ => 0x2000 + (rng.next() % 0x1000) as u16, // around 0.008–0.03
            };
            bytes.extend_from_slice(&scale.to_le_bytes());
            for i in 0..QK {
                let q: i8 = match (b + i) % 5 {
                    0 => -128,
                    1 => 127,
                    _ => rng.next() as i8,
                };
                bytes.push(q as u8);
            }
        }
        bytes
    }

    /// The plain definition: dequantise both sides, multiply in f64. Also returns, per output,
    /// `Σ |w·x|`: f32 accumulation (in any order, over partial sums) is exact to a few ulps of
    /// that, not of the (possibly cancelled) result.
    fn reference(w: &Q8Matrix, x: &QRows) -> Vec<(f64, f64)> {
        let mut out = vec![(0f64, 0f64); w.rows * x.m];
        let mut wrow = vec![0f32; w.cols];
        for r in 0..w.rows {
            w.dequantize_row(r, &mut wrow);
            for j in 0..x.m {
                let (mut acc, mut magnitude) = (0f64, 0f64);
                for (b, wb) in wrow.chunks(QK).enumerate() {
                    let xq = &x.qs[(j * x.kb_pair + b) * QK..][..QK];
                    let d = f64::from(x.d[j * x.kb + b]);
                    for (&w, &q) in wb.iter().zip(xq) {
                        let p = f64::from(w) * f64::from(q) * d;
                        acc += p;
                        magnitude += p.abs();
                    }
                }
                out[r * x.m + j] = (acc, magnitude);
            }
        }
        out
    }

    fn check(cols: usize, m: usize, seed: u64) {
        let mut rng = Rng(seed);
        let rows = 37;
        let w = Q8Matrix::from_ggml_q8_0(rows, cols, &random_ggml(rows, cols, &mut rng)).unwrap();
        let mut xs: Vec<f32> = (0..m * cols).map(|_| rng.f32()).collect();
        xs[0] = 1e4; // an outlier block
        let last = xs.len() - 1;
        xs[cols.min(last)] = -3.0;
        for v in xs.iter_mut().skip(QK).take(QK) {
            *v = 0.0; // an all-zero block: scale 0
        }
        let x = QRows::quantize(&xs, cols);
        let want = reference(&w, &x);
        let mut portable = vec![0f32; rows * m];
        for (r, o) in portable.chunks_mut(m).enumerate() {
            let kb = cols / QK;
            portable_dot(&w.qs[r * cols..][..cols], &w.d[r * kb..][..kb], &x, 0, o);
        }
        let mut dispatched = vec![0f32; rows * m];
        w.dot_rows(0, &x, &mut dispatched);
        for (i, &(want, magnitude)) in want.iter().enumerate() {
            let tol = 1e-5 * magnitude.max(1.0);
            for got in [portable[i], dispatched[i]] {
                assert!(
                    (f64::from(got) - want).abs() <= tol,
                    "cols {cols} m {m} [{i}]: {got} vs {want}"
                );
            }
        }
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            let mut simd = vec![0f32; rows * m];
            for (r, o) in simd.chunks_mut(m).enumerate() {
                let kb = cols / QK;
                let (wq, wd) = (&w.qs[r * cols..][..cols], &w.d[r * kb..][..kb]);
                let mut j = 0;
                while j < m {
                    let n = (m - j).min(4);
                    avx512::dot(wq, wd, &x, j, &mut o[j..j + n]);
                    j += n;
                }
            }
            for (i, &(want, magnitude)) in want.iter().enumerate() {
                let tol = 1e-5 * magnitude.max(1.0);
                assert!((f64::from(simd[i]) - want).abs() <= tol, "avx512 cols {cols} m {m} [{i}]");
            }
        }
    }

    #[test]
    fn kernels_match_the_reference_on_every_shape() {
        // Block counts: 1 (odd, below a pair), 3 (odd), 16, 20 (the model's 640), 33 (odd tail
        // past a chunk), 64; activation rows 1–9 (every group size and remainder).
        for (i, cols) in [32, 96, 512, 640, 1056, 2048].into_iter().enumerate() {
            for m in [1, 2, 3, 4, 5, 9] {
                check(cols, m, 0x9e37_79b9_7f4a_7c15 ^ (i as u64 * 31 + m as u64));
            }
        }
    }

    #[test]
    fn scales_round_like_f16() {
        assert_eq!(round_to_f16_precision(1.0), 1.0);
        assert_eq!(round_to_f16_precision(0.333_333_34), f16_to_f32(0x3555));
        assert_eq!(round_to_f16_precision(0.0), 0.0);
        assert_eq!(round_to_f16_precision(1.0 + f32::powi(2.0, -11)), 1.0); // tie → even
        assert_eq!(
            round_to_f16_precision(1.0 + 3.0 * f32::powi(2.0, -11)),
            1.0 + f32::powi(2.0, -9)
        );
    }

    #[test]
    fn f16_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), f32::powi(2.0, -24));
        assert_eq!(f16_to_f32(0x8200), -f32::powi(2.0, -15));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }

    #[test]
    fn ggml_bytes_round_trip_and_bad_shapes_are_refused() {
        let mut rng = Rng(7);
        let bytes = random_ggml(3, 64, &mut rng);
        let w = Q8Matrix::from_ggml_q8_0(3, 64, &bytes).unwrap();
        let mut row = vec![0f32; 64];
        w.dequantize_row(2, &mut row);
        let block = &bytes[5 * BLOCK_BYTES..6 * BLOCK_BYTES];
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        for (i, &v) in row[32..].iter().enumerate() {
            assert_eq!(v, f32::from(block[2 + i] as i8) * d);
        }
        assert!(Q8Matrix::from_ggml_q8_0(3, 64, &bytes[1..]).is_err());
        assert!(Q8Matrix::from_ggml_q8_0(3, 48, &bytes).is_err());
        assert!(Q8Matrix::from_ggml_q8_0(3, 0, &bytes).is_err());
        let mut grown = Q8Matrix::from_ggml_q8_0(1, 64, &bytes[..2 * BLOCK_BYTES]).unwrap();
        grown.extend_ggml_q8_0(&bytes[2 * BLOCK_BYTES..]).unwrap();
        assert_eq!((grown.rows, grown.qs, grown.d), (3, w.qs, w.d));
    }
}
