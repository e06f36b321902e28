/* Native side of isa_fuzz.ts: runs code buffers on this x86-64 host and dumps GPRs, RFLAGS, XMM and a
 * 4 KiB data page. Reads fixed-size records from argv[1], writes results to argv[2]. Linux x86-64 only. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CODE 0x200000UL
#define DATA 0x300000UL
#define CTRL 0x380000UL
#define CODE_MAX 2048

struct st { uint64_t g[16]; uint64_t fl; uint64_t pad; uint8_t x[16][16]; };
struct rec_in { uint32_t len; uint32_t off; uint8_t code[CODE_MAX]; struct st s; uint8_t data[4096]; };
struct rec_out { int32_t sig; int32_t pad; struct st s; uint8_t data[4096]; };

void run_case(void);
void exit_stub(void);

__asm__(
  ".intel_syntax noprefix\n"
  ".text\n.globl run_case\nrun_case:\n"
  " push rbx\n push rbp\n push r12\n push r13\n push r14\n push r15\n"
  " mov QWORD PTR ds:0x380400, rsp\n"
  " movdqu xmm0, XMMWORD PTR ds:0x380090\n movdqu xmm1, XMMWORD PTR ds:0x3800a0\n"
  " movdqu xmm2, XMMWORD PTR ds:0x3800b0\n movdqu xmm3, XMMWORD PTR ds:0x3800c0\n"
  " movdqu xmm4, XMMWORD PTR ds:0x3800d0\n movdqu xmm5, XMMWORD PTR ds:0x3800e0\n"
  " movdqu xmm6, XMMWORD PTR ds:0x3800f0\n movdqu xmm7, XMMWORD PTR ds:0x380100\n"
  " movdqu xmm8, XMMWORD PTR ds:0x380110\n movdqu xmm9, XMMWORD PTR ds:0x380120\n"
  " movdqu xmm10, XMMWORD PTR ds:0x380130\n movdqu xmm11, XMMWORD PTR ds:0x380140\n"
  " movdqu xmm12, XMMWORD PTR ds:0x380150\n movdqu xmm13, XMMWORD PTR ds:0x380160\n"
  " movdqu xmm14, XMMWORD PTR ds:0x380170\n movdqu xmm15, XMMWORD PTR ds:0x380180\n"
  " push QWORD PTR ds:0x380080\n popfq\n"
  " mov rax, QWORD PTR ds:0x380000\n mov rcx, QWORD PTR ds:0x380008\n mov rdx, QWORD PTR ds:0x380010\n"
  " mov rbx, QWORD PTR ds:0x380018\n mov rsp, QWORD PTR ds:0x380020\n mov rbp, QWORD PTR ds:0x380028\n"
  " mov rsi, QWORD PTR ds:0x380030\n mov rdi, QWORD PTR ds:0x380038\n mov r8, QWORD PTR ds:0x380040\n"
  " mov r9, QWORD PTR ds:0x380048\n mov r10, QWORD PTR ds:0x380050\n mov r11, QWORD PTR ds:0x380058\n"
  " mov r12, QWORD PTR ds:0x380060\n mov r13, QWORD PTR ds:0x380068\n mov r14, QWORD PTR ds:0x380070\n"
  " mov r15, QWORD PTR ds:0x380078\n"
  " jmp QWORD PTR ds:0x380408\n"
  ".globl exit_stub\nexit_stub:\n"
  " mov QWORD PTR ds:0x380200, rax\n mov QWORD PTR ds:0x380208, rcx\n mov QWORD PTR ds:0x380210, rdx\n"
  " mov QWORD PTR ds:0x380218, rbx\n mov QWORD PTR ds:0x380220, rsp\n mov QWORD PTR ds:0x380228, rbp\n"
  " mov QWORD PTR ds:0x380230, rsi\n mov QWORD PTR ds:0x380238, rdi\n mov QWORD PTR ds:0x380240, r8\n"
  " mov QWORD PTR ds:0x380248, r9\n mov QWORD PTR ds:0x380250, r10\n mov QWORD PTR ds:0x380258, r11\n"
  " mov QWORD PTR ds:0x380260, r12\n mov QWORD PTR ds:0x380268, r13\n mov QWORD PTR ds:0x380270, r14\n"
  " mov QWORD PTR ds:0x380278, r15\n"
  " mov rsp, QWORD PTR ds:0x380400\n pushfq\n pop rax\n mov QWORD PTR ds:0x380280, rax\n"
  " movdqu XMMWORD PTR ds:0x380290, xmm0\n movdqu XMMWORD PTR ds:0x3802a0, xmm1\n"
  " movdqu XMMWORD PTR ds:0x3802b0, xmm2\n movdqu XMMWORD PTR ds:0x3802c0, xmm3\n"
  " movdqu XMMWORD PTR ds:0x3802d0, xmm4\n movdqu XMMWORD PTR ds:0x3802e0, xmm5\n"
  " movdqu XMMWORD PTR ds:0x3802f0, xmm6\n movdqu XMMWORD PTR ds:0x380300, xmm7\n"
  " movdqu XMMWORD PTR ds:0x380310, xmm8\n movdqu XMMWORD PTR ds:0x380320, xmm9\n"
  " movdqu XMMWORD PTR ds:0x380330, xmm10\n movdqu XMMWORD PTR ds:0x380340, xmm11\n"
  " movdqu XMMWORD PTR ds:0x380350, xmm12\n movdqu XMMWORD PTR ds:0x380360, xmm13\n"
  " movdqu XMMWORD PTR ds:0x380370, xmm14\n movdqu XMMWORD PTR ds:0x380380, xmm15\n"
  " cld\n pop r15\n pop r14\n pop r13\n pop r12\n pop rbp\n pop rbx\n ret\n"
  ".att_syntax\n");

static sigjmp_buf jb;
static volatile int got_sig;

static void on_sig(int sig) {
  got_sig = sig;
  siglongjmp(jb, 1);
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: isa_harness IN OUT\n"); return 2; }
  void *code = mmap((void *)CODE, 0x10000, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  void *data = mmap((void *)DATA, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  void *ctrl = mmap((void *)CTRL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (code != (void *)CODE || data != (void *)DATA || ctrl != (void *)CTRL) { perror("mmap"); return 1; }
  FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
  if (!fi || !fo) { perror("open"); return 1; }
  /* Faults arrive with rsp inside the small data page: take signals on their own stack. */
  stack_t ss;
  ss.ss_sp = malloc(1 << 16);
  ss.ss_size = 1 << 16;
  ss.ss_flags = 0;
  sigaltstack(&ss, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sig;
  sa.sa_flags = SA_NODEFER | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, 0); sigaction(SIGFPE, &sa, 0); sigaction(SIGILL, &sa, 0);
  sigaction(SIGBUS, &sa, 0); sigaction(SIGTRAP, &sa, 0);
  static struct rec_in in;
  static struct rec_out out;
  static const uint8_t jmp_exit[7] = {0xff, 0x24, 0x25, 0x10, 0x04, 0x38, 0x00};
  uint64_t *c = (uint64_t *)CTRL;
  while (fread(&in, sizeof in, 1, fi) == 1) {
    if (in.len > CODE_MAX || in.off > 0x8000) return 3;
    memcpy((uint8_t *)CODE + in.off, in.code, in.len);
    memcpy((uint8_t *)CODE + in.off + in.len, jmp_exit, sizeof jmp_exit);
    memcpy((void *)DATA, in.data, 4096);
    memcpy((void *)CTRL, &in.s, sizeof in.s);
    c[0x408 / 8] = CODE + in.off;
    c[0x410 / 8] = (uint64_t)exit_stub;
    got_sig = 0;
    memset(&out, 0, sizeof out);
    if (sigsetjmp(jb, 1) == 0) {
      /* YMM upper halves start at zero (the software CPU's reset state) for the VEX groups. */
      if (__builtin_cpu_supports("avx")) __asm__ volatile("vzeroall" ::: "memory");
      run_case();
      memcpy(&out.s, (uint8_t *)CTRL + 0x200, sizeof out.s);
    }
    out.sig = got_sig;
    memcpy(out.data, (void *)DATA, 4096);
    fwrite(&out, sizeof out, 1, fo);
  }
  fclose(fo);
  return 0;
}
