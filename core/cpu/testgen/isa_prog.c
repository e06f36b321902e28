/* A real x86-64-v3 program for the guest-vs-host comparison (tests/isa_guest_test.ts): compiled on the host
 * with gcc -static -O2 -march=x86-64-v3, run natively and inside the guest (-cpu max, -accel tcg); every
 * line it prints must match. Exercises compiler-vectorised AVX2/FMA loops, intrinsics (AVX2, FMA, F16C,
 * BMI1/2, ADX, LZCNT, POPCNT, MOVBE, SSE4.2 CRC32 and string compares), glibc's AVX2 string functions
 * (chosen by CPUID at start-up) and double formatting. No x87 long double, no approximate instructions. */
#include <fenv.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t h = 1469598103934665603ull;
static void mix(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ull; }
}
#define SHOW(name) printf("%-10s %016llx\n", name, (unsigned long long)h), h = 1469598103934665603ull

static double a[512], b[512], c[512];
static float fa[512], fb[512], fc[512];
static int32_t ia[512], ib[512];
static char text[4096];

int main(void) {
  for (int i = 0; i < 512; i++) {
    a[i] = i * 0.37 - 20; b[i] = 1.0 / (i + 1); c[i] = (i % 7) - 3.25;
    fa[i] = (float)i / 3.0f; fb[i] = sqrtf((float)i + 0.5f); fc[i] = (float)(i % 11) * -0.125f;
    ia[i] = i * 2654435761u; ib[i] = (i * 40503) ^ 0x5a5a;
  }
  /* vectorised loops (FMA contraction is on by default for GNU C) */
  for (int i = 0; i < 512; i++) c[i] = a[i] * b[i] + c[i];
  for (int i = 0; i < 512; i++) fc[i] = fa[i] * fb[i] - fc[i];
  for (int i = 0; i < 512; i++) ia[i] = (ia[i] >> 3) + ib[i] * 7 - (ia[i] < ib[i] ? ia[i] : ib[i]);
  mix(c, sizeof c); SHOW("vec-f64");
  mix(fc, sizeof fc); SHOW("vec-f32");
  mix(ia, sizeof ia); SHOW("vec-i32");
  double s = 0;
  for (int i = 0; i < 512; i++) s += c[i] * c[i];
  printf("sum        %.17g %a\n", s, s);
  printf("sqrt       %.17g %a\n", sqrt(s), sqrt(s));
  printf("fma        %a\n", fma(a[3], b[5], -c[7]));
  /* AVX2 intrinsics */
  __m256i x = _mm256_loadu_si256((const __m256i *)ia), y = _mm256_loadu_si256((const __m256i *)ib);
  __m256i r = _mm256_add_epi32(x, y);
  r = _mm256_xor_si256(r, _mm256_shuffle_epi8(x, y));
  r = _mm256_permutevar8x32_epi32(r, _mm256_and_si256(y, _mm256_set1_epi32(7)));
  r = _mm256_maddubs_epi16(r, x);
  r = _mm256_sad_epu8(r, y);
  r = _mm256_blendv_epi8(r, x, y);
  r = _mm256_add_epi64(r, _mm256_i32gather_epi64((const long long *)ia, _mm_and_si128(_mm256_castsi256_si128(y), _mm_set1_epi32(63)), 8));
  r = _mm256_permute4x64_epi64(r, 0x4e);
  r = _mm256_sllv_epi32(r, _mm256_and_si256(x, _mm256_set1_epi32(31)));
  mix(&r, sizeof r);
  mix((int[]){_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, r)), _mm256_testz_si256(x, y)}, 8);
  SHOW("avx2");
  __m256 fx = _mm256_loadu_ps(fa + 5), fy = _mm256_loadu_ps(fb + 9);
  __m256 fr = _mm256_fmadd_ps(fx, fy, _mm256_set1_ps(-1.5f));
  fr = _mm256_fmsubadd_ps(fr, fx, fy);
  fr = _mm256_dp_ps(fr, fy, 0xf1);
  fr = _mm256_round_ps(_mm256_div_ps(fr, fx), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m128i ph = _mm256_cvtps_ph(_mm256_mul_ps(fx, fy), 0);
  mix(&fr, sizeof fr); mix(&ph, sizeof ph);
  __m256 back = _mm256_cvtph_ps(ph);
  mix(&back, sizeof back);
  SHOW("fma-f16c");
  /* BMI1/BMI2/ADX/LZCNT/POPCNT/MOVBE */
  uint64_t acc = 0;
  for (uint64_t i = 1; i < 2000; i++) {
    uint64_t v = i * 0x9e3779b97f4a7c15ull;
    unsigned long long hi, carry = 0;
    acc += _pdep_u64(v, 0x0f0f0f0f0f0f0f0full) ^ _pext_u64(v, acc | 1);
    acc += _bzhi_u64(v, i & 63) + _lzcnt_u64(v >> (i & 63)) + _tzcnt_u64(v) + _mm_popcnt_u64(v);
    acc += _andn_u64(v, acc) ^ _blsr_u64(v) ^ _blsmsk_u64(v) ^ _blsi_u64(v) ^ _bextr_u64(v, i & 63, 17);
    acc += _mulx_u64(v, acc, &hi) ^ hi;
    carry = _addcarryx_u64((unsigned char)(i & 1), acc, v, (unsigned long long *)&acc);
    acc += carry + __builtin_bswap64(v) + ((v >> 17) | (v << 47)) + (v >> (i & 63)) + (uint64_t)((int64_t)v >> (i & 63));
  }
  printf("bmi        %016llx\n", (unsigned long long)acc);
  /* SSE4.2 */
  uint64_t crc = 0;
  for (int i = 0; i < 512; i++) crc = _mm_crc32_u64(crc, (uint64_t)ia[i] * 31);
  crc = _mm_crc32_u8((uint32_t)crc, 7);
  __m128i needle = _mm_setr_epi8('q', 'u', 'i', 'c', 'k', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  const char *hay = "the quick brown fox jumps over";
  int idx = _mm_cmpistri(needle, _mm_loadu_si128((const __m128i *)(hay + 1)), _SIDD_CMP_EQUAL_ORDERED);
  int rng = _mm_cmpistri(_mm_setr_epi8('a', 'm', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                         _mm_loadu_si128((const __m128i *)(hay + 3)), _SIDD_CMP_RANGES | _SIDD_MOST_SIGNIFICANT);
  printf("sse42      %08llx %d %d\n", (unsigned long long)crc, idx, rng);
  /* glibc string functions (AVX2 variants under -cpu max) */
  for (int i = 0; i < 4095; i++) text[i] = "abcdefghij klmnopqrstuvwxyz0123456789"[(i * 7 + i / 13) % 37];
  size_t tot = 0;
  for (int off = 0; off < 70; off += 3) {
    text[1000 + off * 13] = 0;
    tot += strlen(text + off) * 3 + (size_t)((char *)memchr(text + off, '9', 3000) - text);
    tot += (size_t)(strchr(text + off, 'z') - text) + (size_t)(strrchr(text + off, 'q') - text);
    tot += (size_t)(memcmp(text + off, text + off + 37, 200) > 0) + (size_t)(strcmp(text + off, text + off + 1) < 0);
    memmove(text + off + 5, text + off, 500);
    tot += strspn(text + off, "abcdefghij") + strcspn(text + off, "0");
    text[1000 + off * 13] = 'x';
  }
  printf("strings    %zu\n", tot);
  /* rounding modes */
  double q = 1.0 / 3.0;
  for (int m = 0; m < 4; m++) {
    static const int modes[4] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
    fesetround(modes[m]);
    volatile double t = q;
    printf("round%d     %a %a %ld %a\n", m, t * 3.0 + 1e-17, t / 7.0, lrint(t * 1e10), (double)(float)t);
  }
  fesetround(FE_TONEAREST);
  printf("strtod     %a %.17g\n", strtod("2.2250738585072011e-308", 0), strtod("123456789.987654321", 0));
  return 0;
}
