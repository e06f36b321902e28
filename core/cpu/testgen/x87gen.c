/*
 * Golden x87 vectors from the host CPU: core/cpu/testgen/x87_vectors.txt (x87_test.ts replays them).
 *
 *   gcc -O1 -o /tmp/x87gen core/cpu/testgen/x87gen.c && /tmp/x87gen > core/cpu/testgen/x87_vectors.txt
 *   gzip -9nf core/cpu/testgen/x87_vectors.txt
 *
 * Every vector runs the same sequence on the host and in the interpreter (rdi = buf, rsi = mem):
 *   push qword [rdi+224]; popfq; fninit; fldcw [rdi]; (fld tword [rdi+32]); (fld tword [rdi+16]);
 *   <op>; fnstsw [rdi+48]; fnsave [rdi+96]; pushfq; pop rax
 * and records the status word, the full tag word, ST(0), ST(1), the arithmetic flags and the 16 bytes at
 * rsi. The instruction bytes of <op> are taken from the host's own code (labels around it).
 * Output: "O name depth bytes" per op, then "V cw flagsin A B sw tw st0 st1 flagsout mem" lines
 * (byte strings little-endian hex).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint8_t buf[256] __attribute__((aligned(16)));
static uint8_t mem[16] __attribute__((aligned(16)));

#define SEQ(DEPTH_LOADS, OP)                                                                                  \
  __asm__ volatile("pushq 224(%%rdi)\n popfq\n fninit\n fldcw (%%rdi)\n" DEPTH_LOADS "1: " OP "\n"             \
                   "2: fnstsw 48(%%rdi)\n fnsave 96(%%rdi)\n pushfq\n popq %%rax\n movq %%rax, 200(%%rdi)\n"     \
                   "lea 1b(%%rip), %%rcx\n movq %%rcx, 208(%%rdi)\n lea 2b(%%rip), %%rcx\n movq %%rcx, 216(%%rdi)" \
                   :                                                                                         \
                   : "D"(buf), "S"(mem)                                                                      \
                   : "rax", "rcx", "memory", "cc", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)")
#define L0 ""
#define L1 "fldt 16(%%rdi)\n"
#define L2 "fldt 32(%%rdi)\n fldt 16(%%rdi)\n"

typedef void (*fn)(void);
struct op {
  const char *name;
  int depth;
  fn f;
  int set; /* input set: 0 ext×ext, 1 ext only, 2 m32 B, 3 m64 B, 4 m16int B, 5 m32int B, 6 m64int B, 7 bcd B, 8 none */
};

#define DEF(id, d, op)                                                                                       \
  static void id(void) { SEQ(L##d, op); }                                                                    \
  static const int id##_depth = d;
DEF(fadd_st, 2, "fadd %%st(1), %%st")
DEF(fsub_st, 2, "fsub %%st(1), %%st")
DEF(fsubr_st, 2, "fsubr %%st(1), %%st")
DEF(fmul_st, 2, "fmul %%st(1), %%st")
DEF(fdiv_st, 2, "fdiv %%st(1), %%st")
DEF(fdivr_st, 2, "fdivr %%st(1), %%st")
DEF(faddp, 2, ".byte 0xde, 0xc1")
DEF(fsubp_i, 2, ".byte 0xde, 0xe9")
DEF(fsubrp_i, 2, ".byte 0xde, 0xe1")
DEF(fdivp_i, 2, ".byte 0xde, 0xf9")
DEF(fdivrp_i, 2, ".byte 0xde, 0xf1")
DEF(fsub_i, 2, ".byte 0xdc, 0xe9")
DEF(fadd_m32, 1, "fadds (%%rsi)")
DEF(fsubr_m32, 1, "fsubrs (%%rsi)")
DEF(fmul_m64, 1, "fmull (%%rsi)")
DEF(fdiv_m64, 1, "fdivl (%%rsi)")
DEF(fiadd_m16, 1, "fiadds (%%rsi)")
DEF(fisub_m32, 1, "fisubl (%%rsi)")
DEF(fidivr_m32, 1, "fidivrl (%%rsi)")
DEF(fimul_m16, 1, "fimuls (%%rsi)")
DEF(fsqrt, 1, "fsqrt")
DEF(frndint, 1, "frndint")
DEF(fabs_, 1, "fabs")
DEF(fchs, 1, "fchs")
DEF(fxtract, 1, "fxtract")
DEF(fscale, 2, "fscale")
DEF(fprem, 2, "fprem")
DEF(fprem1, 2, "fprem1")
DEF(fcom, 2, "fcom %%st(1)")
DEF(fcompp, 2, "fcompp")
DEF(fucom, 2, "fucom %%st(1)")
DEF(fucompp, 2, "fucompp")
DEF(fcomi, 2, "fcomi %%st(1), %%st")
DEF(fucomip, 2, "fucomip %%st(1), %%st")
DEF(fcom_m32, 1, "fcoms (%%rsi)")
DEF(ficomp_m16, 1, "ficomps (%%rsi)")
DEF(ftst, 1, "ftst")
DEF(fxam, 1, "fxam")
DEF(fxam_empty, 0, "fxam")
DEF(fcmovb, 2, "fcmovb %%st(1), %%st")
DEF(fcmovnbe, 2, "fcmovnbe %%st(1), %%st")
DEF(fcmovu, 2, "fcmovu %%st(1), %%st")
DEF(fxch, 2, "fxch %%st(1)")
DEF(fld_m32, 0, "flds (%%rsi)")
DEF(fld_m64, 0, "fldl (%%rsi)")
DEF(fld_m80, 0, "fldt (%%rsi)")
DEF(fst_m32, 1, "fsts (%%rsi)")
DEF(fstp_m64, 1, "fstpl (%%rsi)")
DEF(fstp_m80, 1, "fstpt (%%rsi)")
DEF(fild_m16, 0, "filds (%%rsi)")
DEF(fild_m32, 0, "fildl (%%rsi)")
DEF(fild_m64, 0, "fildll (%%rsi)")
DEF(fist_m16, 1, "fists (%%rsi)")
DEF(fistp_m32, 1, "fistpl (%%rsi)")
DEF(fistp_m64, 1, "fistpll (%%rsi)")
DEF(fisttp_m16, 1, "fisttps (%%rsi)")
DEF(fisttp_m32, 1, "fisttpl (%%rsi)")
DEF(fisttp_m64, 1, "fisttpll (%%rsi)")
DEF(fbld, 0, "fbld (%%rsi)")
DEF(fbstp, 1, "fbstp (%%rsi)")
DEF(fld1, 0, "fld1")
DEF(fldl2t, 0, "fldl2t")
DEF(fldl2e, 0, "fldl2e")
DEF(fldpi, 0, "fldpi")
DEF(fldlg2, 0, "fldlg2")
DEF(fldln2, 0, "fldln2")
DEF(fldz, 0, "fldz")
DEF(fadd_empty, 1, "fadd %%st(1), %%st")
DEF(fld_overflow, 2, "fld %%st(0)\n fld %%st(0)\n fld %%st(0)\n fld %%st(0)\n fld %%st(0)\n fld %%st(0)\n fld %%st(0)")
DEF(fdecstp, 2, "fdecstp")
DEF(fincstp, 2, "fincstp")
DEF(ffree, 2, "ffree %%st(1)")
DEF(fsin, 1, "fsin")
DEF(fcos, 1, "fcos")
DEF(fsincos, 1, "fsincos")
DEF(fptan, 1, "fptan")
DEF(fpatan, 2, "fpatan")
DEF(f2xm1, 1, "f2xm1")
DEF(fyl2x, 2, "fyl2x")
DEF(fyl2xp1, 2, "fyl2xp1")

#define E(id, set) {#id, id##_depth, id, set}
static const struct op ops[] = {
    E(fadd_st, 0),    E(fsub_st, 0),     E(fsubr_st, 0),    E(fmul_st, 0),     E(fdiv_st, 0),      E(fdivr_st, 0),
    E(faddp, 10),     E(fsubp_i, 10),    E(fsubrp_i, 10),   E(fdivp_i, 10),    E(fdivrp_i, 10),    E(fsub_i, 10),
    E(fadd_m32, 2),   E(fsubr_m32, 2),   E(fmul_m64, 3),    E(fdiv_m64, 3),    E(fiadd_m16, 4),    E(fisub_m32, 5),
    E(fidivr_m32, 5), E(fimul_m16, 4),   E(fsqrt, 1),       E(frndint, 1),     E(fabs_, 11),       E(fchs, 11),
    E(fxtract, 1),    E(fscale, 12),     E(fprem, 12),      E(fprem1, 12),     E(fcom, 10),        E(fcompp, 10),
    E(fucom, 10),     E(fucompp, 10),    E(fcomi, 10),      E(fucomip, 10),    E(fcom_m32, 2),     E(ficomp_m16, 4),
    E(ftst, 11),      E(fxam, 11),       E(fxam_empty, 8),  E(fcmovb, 13),     E(fcmovnbe, 13),    E(fcmovu, 13),
    E(fxch, 10),      E(fld_m32, 2),     E(fld_m64, 3),     E(fld_m80, 9),     E(fst_m32, 1),      E(fstp_m64, 1),
    E(fstp_m80, 11),  E(fild_m16, 4),    E(fild_m32, 5),    E(fild_m64, 6),    E(fist_m16, 1),     E(fistp_m32, 1),
    E(fistp_m64, 1),  E(fisttp_m16, 1),  E(fisttp_m32, 1),  E(fisttp_m64, 1),  E(fbld, 7),         E(fbstp, 1),
    E(fld1, 8),       E(fldl2t, 8),      E(fldl2e, 8),      E(fldpi, 8),       E(fldlg2, 8),       E(fldln2, 8),
    E(fldz, 8),       E(fadd_empty, 11), E(fld_overflow, 11), E(fdecstp, 10),  E(fincstp, 10),     E(ffree, 10),
    E(fsin, 14),      E(fcos, 14),       E(fsincos, 14),    E(fptan, 14),      E(fpatan, 15),      E(f2xm1, 16),
    E(fyl2x, 15),     E(fyl2xp1, 17),
};

/* 80-bit values: sign/exponent, significand. */
struct x80 {
  uint16_t se;
  uint64_t m;
};
static const struct x80 special[] = {
    {0x0000, 0},
    {0x8000, 0},
    {0x3fff, 0x8000000000000000ull},
    {0xbfff, 0x8000000000000000ull},
    {0x3fff, 0xc000000000000000ull},
    {0x4000, 0x8000000000000000ull},
    {0xc000, 0xc000000000000000ull},
    {0x3ffb, 0xcccccccccccccccdull},
    {0x4000, 0xc90fdaa22168c235ull},
    {0x3fff, 0xffffffffffffffffull},
    {0x3fff, 0x8000000000000001ull},
    {0x3fff, 0x8000000000000400ull},
    {0x3fff, 0x8000000000000c00ull},
    {0x3fff, 0x8000008000000000ull},
    {0xbfff, 0x8000018000000001ull},
    {0x403d, 0xfffffffffffffffeull},
    {0x403e, 0x8000000000000000ull},
    {0xc03e, 0x8000000000000000ull},
    {0x401e, 0xffffffff00000000ull},
    {0x4030, 0xde0b6b3a763fffffull},
    {0x7ffe, 0xffffffffffffffffull},
    {0xfffe, 0xffffffffffffffffull},
    {0x0001, 0x8000000000000000ull},
    {0x8001, 0x8000000000000001ull},
    {0x0000, 0x0000000000000001ull},
    {0x0000, 0x4000000000000000ull},
    {0x8000, 0x7fffffffffffffffull},
    {0x0000, 0x8000000000000001ull}, /* pseudo-denormal */
    {0x0001, 0x4000000000000000ull}, /* unnormal */
    {0x7fff, 0x8000000000000000ull},
    {0xffff, 0x8000000000000000ull},
    {0x7fff, 0xc000000000000001ull}, /* QNaN */
    {0xffff, 0xc000000000000000ull}, /* indefinite */
    {0x7fff, 0x8000000000000001ull}, /* SNaN */
    {0xffff, 0xa000000000000000ull}, /* SNaN */
    {0x7fff, 0x4000000000000000ull}, /* pseudo-NaN */
    {0x7fff, 0x0000000000000000ull}, /* pseudo-infinity */
    {0x3c01, 0x8000000000000000ull}, /* double denormal range */
    {0x3bcd, 0x8000000000000001ull},
    {0x3f81, 0xffffff8000000000ull}, /* single normal boundary */
    {0x407e, 0xffffff8000000000ull}, /* single max + half ulp */
    {0x43fe, 0xfffffffffffff800ull}, /* double max */
    {0x43fe, 0xfffffffffffffc00ull},
    {0x3ffe, 0x8000000000000000ull},
    {0x3ffe, 0xfffffffffffffffeull},
    {0xbffe, 0xc000000000000000ull},
    {0x4001, 0xa000000000000000ull}, /* 5 */
    {0x4002, 0xb000000000000000ull}, /* 11 */
};
#define NSPECIAL (sizeof special / sizeof special[0])

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static struct x80 randx(int spread) {
  struct x80 v;
  v.m = rnd() | 0x8000000000000000ull;
  int e = 0x3fff + (int)(rnd() % (2 * spread + 1)) - spread;
  v.se = (uint16_t)(e | ((rnd() & 1) << 15));
  return v;
}

static void put80(uint8_t *p, struct x80 v) {
  memcpy(p, &v.m, 8);
  memcpy(p + 8, &v.se, 2);
}

static void hex(const uint8_t *p, int n) {
  for (int i = 0; i < n; i++) printf("%02x", p[i]);
}


static int bwidth; /* bytes of B printed */
static int mwidth; /* bytes of memory printed */

static void run(const struct op *o, uint16_t cw, uint64_t flagsin, struct x80 a, const uint8_t *b16) {
  memset(buf, 0, sizeof buf);
  memcpy(buf, &cw, 2);
  put80(buf + 16, a);
  memcpy(buf + 32, b16, 10);
  memcpy(mem, b16, 16);
  uint64_t fi = flagsin | 2;
  memcpy(buf + 224, &fi, 8);
  o->f();
  uint16_t sw, tw;
  memcpy(&sw, buf + 48, 2);
  memcpy(&tw, buf + 96 + 8, 2);
  uint64_t fo;
  memcpy(&fo, buf + 200, 8);
  printf("V %x %x ", cw, (unsigned)flagsin);
  hex(buf + 16, 10);
  printf(" ");
  hex(b16, bwidth);
  printf(" %x %x ", sw, tw);
  hex(buf + 96 + 28, 10);
  printf(" ");
  hex(buf + 96 + 38, 10);
  printf(" %x ", (unsigned)(fo & 0x8d5));
  hex(mem, mwidth);
  printf("\n");
}

static const uint16_t cws[] = {0x037f, 0x077f, 0x0b7f, 0x0f7f, 0x007f, 0x027f, 0x0e7f, 0x0360};
#define NCW (sizeof cws / sizeof cws[0])

static void bext(uint8_t *b, struct x80 v) {
  memset(b, 0, 16);
  put80(b, v);
}

/* Representative subset of special[] for the quadratic sets. */
static const int rep[] = {0, 1, 2, 3, 4, 7, 9, 10, 11, 16, 20, 21, 22, 24, 26, 27, 28, 29, 30, 31, 33, 34, 35, 36, 43, 46};
#define NREP (sizeof rep / sizeof rep[0])

static const uint32_t f32s[] = {0, 0x80000000, 0x3f800000, 0xbfc00000, 0x00000001, 0x807fffff, 0x00800000, 0x7f7fffff,
                                0x7f800000, 0xff800000, 0x7fc00001, 0x7f800001, 0xffa00000, 0x4b000001, 0x3eaaaaab, 0x5f000000};
static const uint64_t f64s[] = {0, 0x8000000000000000ull, 0x3ff0000000000000ull, 0xbff8000000000000ull, 1, 0x800fffffffffffffull,
                                0x0010000000000000ull, 0x7fefffffffffffffull, 0x7ff0000000000000ull, 0xfff0000000000000ull,
                                0x7ff8000000000001ull, 0x7ff0000000000001ull, 0x3fd5555555555555ull, 0x43e0000000000000ull,
                                0xc3e0000000000001ull, 0x4340000000000001ull};
static const int64_t ints[] = {0, 1, -1, 2, 3, -7, 32767, -32768, 0x7fffffff, -0x7fffffffll - 1, 0x7fffffffffffffffll,
                               -0x7fffffffffffffffll - 1, 1234567, -98765432109ll, 0x20000000000001ll, 0x7ffffffffffffc00ll};

int main(void) {
  uint8_t b[16];
  for (unsigned k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    const struct op *o = &ops[k];
    memset(b, 0, 16);
    o->f();
    uint64_t s0, s1;
    memcpy(&s0, buf + 208, 8);
    memcpy(&s1, buf + 216, 8);
    int set = o->set;
    bwidth = set == 2 ? 4 : set == 3 || set == 6 ? 8 : set == 4 ? 2 : set == 5 ? 4 : set == 8 ? 0 : 10;
    const char *n = o->name;
    int writes = strstr(n, "fst") || strstr(n, "fist") || strstr(n, "fbstp");
    mwidth = writes ? (strstr(n, "m16") ? 2 : strstr(n, "m32") ? 4 : strstr(n, "m64") ? 8 : 10) : 0;
    printf("O %s %d ", n, o->depth);
    hex((const uint8_t *)(uintptr_t)s0, (int)(s1 - s0));
    printf("\n");
    rng_state = 0x9e3779b97f4a7c15ull + k;
    switch (set) {
    case 0: /* ext × ext arithmetic */
      for (unsigned i = 0; i < NSPECIAL; i++)
        for (unsigned j = 0; j < NSPECIAL; j++) bext(b, special[j]), run(o, 0x37f, 0, special[i], b);
      for (unsigned i = 0; i < NREP; i++)
        for (unsigned j = 0; j < NREP; j++)
          for (int c = 1; c < 8; c += 3) bext(b, special[rep[j]]), run(o, cws[c], 0, special[rep[i]], b);
      for (int i = 0; i < 120; i++) {
        struct x80 a = randx(i < 40 ? 3 : 20), bb = randx(i < 40 ? 3 : 20);
        if (i >= 100) a = randx(20), a.se = (a.se & 0x8000) | (i & 1 ? 0x0001 + (i & 7) : 0x7ffe - (i & 7)), bb.se = (bb.se & 0x8000) | 0x3fff + ((i & 2) ? 1 : -1) * (i & 15);
        bext(b, bb);
        for (unsigned c = 0; c < NCW; c++) run(o, cws[c], 0, a, b);
      }
      break;
    case 10:
    case 12:
      for (unsigned i = 0; i < NREP; i++)
        for (unsigned j = 0; j < NREP; j++) bext(b, special[rep[j]]), run(o, 0x37f, 0, special[rep[i]], b);
      for (int i = 0; i < (set == 12 ? 150 : 30); i++) {
        struct x80 a = randx(set == 12 ? 110 : 10), bb = randx(set == 12 ? 8 : 10);
        bext(b, bb);
        for (unsigned c = 0; c < NCW; c += (set == 12 ? 1 : 3)) run(o, cws[c], 0, a, b);
      }
      break;
    case 1:
    case 11:
    case 14:
    case 16:
      for (unsigned i = 0; i < NSPECIAL; i++) {
        memset(b, 0, 16);
        for (unsigned c = 0; c < NCW; c += (set == 1 ? 1 : 7)) run(o, cws[c], 0, special[i], b);
      }
      if (set == 11) break;
      for (int i = 0; i < 60; i++) {
        struct x80 a = randx(set == 14 ? 4 : set == 16 ? 0 : 70);
        if (set == 14 && i >= 45) a.se = (a.se & 0x8000) | (0x4000 + (i - 45) * 4); /* large arguments */
        if (set == 16) a.se = (a.se & 0x8000) | (0x3ffe - (i % 20) * 3);
        memset(b, 0, 16);
        for (unsigned c = 0; c < NCW; c += (set == 1 ? 1 : 2)) run(o, cws[c], 0, a, b);
      }
      break;
    case 15:
    case 17:
      for (unsigned i = 0; i < NREP; i++)
        for (unsigned j = 0; j < NREP; j++) bext(b, special[rep[j]]), run(o, 0x37f, 0, special[rep[i]], b);
      for (int i = 0; i < 80; i++) {
        struct x80 a = randx(set == 17 ? 0 : 30), bb = randx(10);
        if (set == 17) a.se = (a.se & 0x8000) | (0x3ffc - (i % 30) * 2);
        else a.se &= 0x7fff;
        bext(b, bb);
        for (unsigned c = 0; c < NCW; c += 2) run(o, cws[c], 0, a, b);
      }
      break;
    case 13:
      for (unsigned i = 0; i < 8; i++)
        for (unsigned f = 0; f < 5; f++) {
          static const unsigned fl[] = {0, 1, 0x40, 4, 0x41};
          bext(b, special[rep[(i * 3 + 1) % NREP]]);
          run(o, 0x37f, fl[f], special[rep[i]], b);
        }
      break;
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
    case 9:
      for (unsigned j = 0; j < 16; j++) {
        memset(b, 0, 16);
        if (set == 2) memcpy(b, &f32s[j], 4);
        if (set == 3) memcpy(b, &f64s[j], 8);
        if (set == 4) { int16_t v = (int16_t)ints[j]; memcpy(b, &v, 2); }
        if (set == 5) { int32_t v = (int32_t)ints[j]; memcpy(b, &v, 4); }
        if (set == 6) memcpy(b, &ints[j], 8);
        if (set == 7) {
          uint64_t v = (uint64_t)(ints[j] < 0 ? -ints[j] : ints[j]) % 1000000000000000000ull;
          for (int d = 0; d < 9; d++) b[d] = (uint8_t)((v % 10) | ((v / 10 % 10) << 4)), v /= 100;
          b[9] = ints[j] < 0 ? 0x80 : 0;
        }
        if (set == 9) bext(b, special[j * 3 % NSPECIAL]);
        if (o->depth == 0) {
          for (unsigned c = 0; c < NCW; c += 2) run(o, cws[c], 0, special[0], b);
        } else {
          for (unsigned i = 0; i < NREP; i++) run(o, 0x37f, 0, special[rep[i]], b);
          run(o, 0x0360, 0, special[rep[j % NREP]], b);
        }
      }
      break;
    case 8:
      memset(b, 0, 16);
      for (unsigned c = 0; c < NCW; c++) run(o, cws[c], 0, special[0], b);
      break;
    }
  }
  return 0;
}
