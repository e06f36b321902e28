/*
 * C reference for bench/kvm_bench.ts: the same real-mode guest loops as the TypeScript side, run with
 * plain ioctl(KVM_RUN), so the table shows what Deno FFI + our dispatch cost on top of the kernel.
 *   kvm_exits pio N    out 0x80,al; jmp $-2          → N port-I/O exits
 *   kvm_exits mmio N   mov [0],al with DS=0x2000     → N MMIO exits (GPA 0x20000 is outside RAM)
 *   kvm_exits first    prints the wall-clock ms (CLOCK_REALTIME) of the first guest exit
 * Prints one line: "<mode> <exits> <seconds>".
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_s(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "pio";
  long n = argc > 2 ? atol(argv[2]) : 100000;
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  ioctl(vm, KVM_SET_TSS_ADDR, 0xfeffd000UL);
  size_t ram_size = 0x10000;
  uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (ram == MAP_FAILED) die("mmap ram");
  struct kvm_userspace_memory_region mr = {.slot = 0, .guest_phys_addr = 0, .memory_size = ram_size,
                                           .userspace_addr = (uint64_t)ram};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &mr) < 0) die("KVM_SET_USER_MEMORY_REGION");
  static const uint8_t pio[] = {0xe6, 0x80, 0xeb, 0xfc};
  static const uint8_t mmio[] = {0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xa2, 0x00, 0x00, 0xeb, 0xfb};
  static const uint8_t first[] = {0xe6, 0xf4, 0xf4};
  if (!strcmp(mode, "mmio")) memcpy(ram + 0x1000, mmio, sizeof mmio);
  else if (!strcmp(mode, "first")) memcpy(ram + 0x1000, first, sizeof first);
  else memcpy(ram + 0x1000, pio, sizeof pio);
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");
  struct kvm_sregs sregs;
  ioctl(vcpu, KVM_GET_SREGS, &sregs);
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
  volatile uint32_t sink = 0;
  double t0 = now_s(CLOCK_MONOTONIC);
  long exits = 0;
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
    if (run->exit_reason == KVM_EXIT_IO) {
      /* Dispatch cost a VMM pays anyway: read the data out of the PIO page. */
      sink += *((uint8_t *)run + run->io.data_offset);
      if (!strcmp(mode, "first")) {
        printf("first %.3f\n", now_s(CLOCK_REALTIME) * 1e3);
        return 0;
      }
    } else if (run->exit_reason == KVM_EXIT_MMIO) {
      sink += run->mmio.data[0];
    } else {
      fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
      return 1;
    }
    if (++exits >= n) break;
  }
  printf("%s %ld %.6f\n", mode, exits, now_s(CLOCK_MONOTONIC) - t0);
  return 0;
}
