/*
 * Golden MMX vectors from the host CPU: core/cpu/testgen/mmx_vectors.txt (mmx_test.ts replays them).
 *   gcc -O1 -o /tmp/mmxgen core/cpu/testgen/mmxgen.c && /tmp/mmxgen > core/cpu/testgen/mmx_vectors.txt
 * Sequence (rdi = buf): movq mm0,[rdi]; movq mm1,[rdi+8]; mov rax,[rdi+32]; <op>; movq [rdi+16],mm0;
 * mov [rdi+24],rax; emms. Output: "O name bytes" then "V a b rax-in mm0-out rax-out" (hex u64).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t buf[8] __attribute__((aligned(16)));

#define DEF(id, op)                                                                                           \
  static void id(void) {                                                                                     \
    __asm__ volatile("movq (%%rdi), %%mm0\n movq 8(%%rdi), %%mm1\n movq 32(%%rdi), %%rax\n 1: " op "\n 2:"     \
                     " movq %%mm0, 16(%%rdi)\n movq %%rax, 24(%%rdi)\n emms\n"                                 \
                     " lea 1b(%%rip), %%rcx\n movq %%rcx, 40(%%rdi)\n lea 2b(%%rip), %%rcx\n movq %%rcx, 48(%%rdi)" \
                     :                                                                                       \
                     : "D"(buf)                                                                              \
                     : "rax", "rcx", "memory", "mm0", "mm1");                                                \
  }
#define OPS(X)                                                                                                \
  X(punpcklbw, "punpcklbw %%mm1, %%mm0") X(punpcklwd, "punpcklwd %%mm1, %%mm0") X(punpckldq, "punpckldq 8(%%rdi), %%mm0") \
  X(packsswb, "packsswb %%mm1, %%mm0") X(pcmpgtb, "pcmpgtb %%mm1, %%mm0") X(pcmpgtw, "pcmpgtw %%mm1, %%mm0")   \
  X(pcmpgtd, "pcmpgtd %%mm1, %%mm0") X(packuswb, "packuswb %%mm1, %%mm0") X(punpckhbw, "punpckhbw %%mm1, %%mm0") \
  X(punpckhwd, "punpckhwd 8(%%rdi), %%mm0") X(punpckhdq, "punpckhdq %%mm1, %%mm0") X(packssdw, "packssdw %%mm1, %%mm0") \
  X(movd_in, "movd %%eax, %%mm0") X(movq_in, "movq %%rax, %%mm0") X(movq_mm, "movq %%mm1, %%mm0")               \
  X(pshufw, "pshufw $0x1b, %%mm1, %%mm0") X(psrlw_i, "psrlw $3, %%mm0") X(psraw_i, "psraw $15, %%mm0")          \
  X(psllw_i, "psllw $17, %%mm0") X(psrld_i, "psrld $31, %%mm0") X(psrad_i, "psrad $7, %%mm0")                  \
  X(pslld_i, "pslld $1, %%mm0") X(psrlq_i, "psrlq $33, %%mm0") X(psllq_i, "psllq $63, %%mm0")                  \
  X(pcmpeqb, "pcmpeqb %%mm1, %%mm0") X(pcmpeqw, "pcmpeqw %%mm1, %%mm0") X(pcmpeqd, "pcmpeqd %%mm1, %%mm0")     \
  X(movd_out, "movd %%mm1, %%eax") X(movq_out, "movq %%mm1, %%rax") X(psrlw, "psrlw %%mm1, %%mm0")             \
  X(psrld, "psrld %%mm1, %%mm0") X(psrlq, "psrlq %%mm1, %%mm0") X(paddq, "paddq %%mm1, %%mm0")                 \
  X(pmullw, "pmullw %%mm1, %%mm0") X(pmovmskb, "pmovmskb %%mm1, %%eax") X(psubusb, "psubusb %%mm1, %%mm0")     \
  X(psubusw, "psubusw %%mm1, %%mm0") X(pminub, "pminub %%mm1, %%mm0") X(pand, "pand %%mm1, %%mm0")             \
  X(paddusb, "paddusb %%mm1, %%mm0") X(paddusw, "paddusw %%mm1, %%mm0") X(pmaxub, "pmaxub %%mm1, %%mm0")       \
  X(pandn, "pandn %%mm1, %%mm0") X(pavgb, "pavgb %%mm1, %%mm0") X(psraw, "psraw %%mm1, %%mm0")                 \
  X(psrad, "psrad %%mm1, %%mm0") X(pavgw, "pavgw %%mm1, %%mm0") X(pmulhuw, "pmulhuw %%mm1, %%mm0")             \
  X(pmulhw, "pmulhw %%mm1, %%mm0") X(psubsb, "psubsb %%mm1, %%mm0") X(psubsw, "psubsw %%mm1, %%mm0")           \
  X(pminsw, "pminsw %%mm1, %%mm0") X(por, "por %%mm1, %%mm0") X(paddsb, "paddsb %%mm1, %%mm0")                 \
  X(paddsw, "paddsw %%mm1, %%mm0") X(pmaxsw, "pmaxsw %%mm1, %%mm0") X(pxor, "pxor 8(%%rdi), %%mm0")            \
  X(psllw, "psllw %%mm1, %%mm0") X(pslld, "pslld %%mm1, %%mm0") X(psllq, "psllq %%mm1, %%mm0")                 \
  X(pmuludq, "pmuludq %%mm1, %%mm0") X(pmaddwd, "pmaddwd %%mm1, %%mm0") X(psadbw, "psadbw %%mm1, %%mm0")       \
  X(psubb, "psubb %%mm1, %%mm0") X(psubw, "psubw %%mm1, %%mm0") X(psubd, "psubd %%mm1, %%mm0")                 \
  X(psubq, "psubq %%mm1, %%mm0") X(paddb, "paddb %%mm1, %%mm0") X(paddw, "paddw %%mm1, %%mm0")                 \
  X(paddd, "paddd %%mm1, %%mm0") X(pinsrw, "pinsrw $2, %%eax, %%mm0") X(pextrw, "pextrw $3, %%mm1, %%eax")     \
  X(movq_st, "movq %%mm1, 16(%%rdi)\n movq 16(%%rdi), %%mm0")
OPS(DEF)
#define ENT(id, op) {#id, id},
static const struct {
  const char *name;
  void (*f)(void);
} ops[] = {OPS(ENT)};

static uint64_t s = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) {
  s ^= s << 13, s ^= s >> 7, s ^= s << 17;
  return s;
}

int main(void) {
  static const uint64_t special[] = {0, ~0ull, 0x8000000000000000ull, 0x7fff7fff7fff7fffull, 0x8000800080008000ull,
                                     0x00ff00ff00ff00ffull, 0x7f807f807f807f80ull, 1, 15, 16, 31, 32, 63, 64, 0x100000000ull};
  for (unsigned k = 0; k < sizeof ops / sizeof ops[0]; k++) {
    memset(buf, 0, sizeof buf);
    ops[k].f();
    printf("O %s ", ops[k].name);
    for (uint8_t *p = (uint8_t *)buf[5]; p < (uint8_t *)buf[6]; p++) printf("%02x", *p);
    printf("\n");
    for (unsigned i = 0; i < 60; i++) {
      uint64_t a = i < 15 ? special[i] : rnd(), b = i < 15 ? special[(i * 7) % 15] : rnd(), r = rnd();
      if (i >= 45) b = rnd() % 70;
      memset(buf, 0, sizeof buf);
      buf[0] = a, buf[1] = b, buf[4] = r;
      ops[k].f();
      printf("V %llx %llx %llx %llx %llx\n", (unsigned long long)a, (unsigned long long)b, (unsigned long long)r,
             (unsigned long long)buf[2], (unsigned long long)buf[3]);
    }
  }
  return 0;
}
