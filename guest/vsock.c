/*
 * vsock: a tiny AF_VSOCK stream client/server for the microvm test guest (busybox has none).
 * Built static by build-initramfs.sh (musl-gcc if present, else gcc -static).
 *
 *   vsock listen PORT N               accept N connections (one child each), echo every byte back
 *   vsock send CID PORT BYTES SEED    connect, send BYTES of pattern(SEED), half-close, read to EOF;
 *                                     prints "VSOCK-SEND port=P sent=N recv=M fnv=XXXXXXXX"
 *   vsock recv CID PORT               connect, read to EOF; prints "VSOCK-RECV port=P recv=M fnv=XXXXXXXX"
 * pattern(seed)[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff; fnv = 32-bit FNV-1a of the bytes received.
 * Errors print "VSOCK-ERR <what> errno=N" and exit 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* From <linux/vm_sockets.h> (musl ships no kernel headers). */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xffffffffu
struct sockaddr_vm {
  sa_family_t svm_family;
  unsigned short svm_reserved1;
  unsigned int svm_port;
  unsigned int svm_cid;
  unsigned char svm_flags;
  unsigned char svm_zero[3];
};

static unsigned char buf[65536];

static int fail(const char *what, unsigned port) {
  printf("VSOCK-ERR %s port=%u errno=%d\n", what, port, errno);
  fflush(stdout);
  return 2;
}

static int dial(unsigned cid, unsigned port) {
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (s < 0) return -1;
  struct sockaddr_vm a;
  memset(&a, 0, sizeof a);
  a.svm_family = AF_VSOCK;
  a.svm_cid = cid;
  a.svm_port = port;
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    close(s);
    return -1;
  }
  return s;
}

static unsigned drain(int s, unsigned long *total) {
  unsigned h = 2166136261u;
  for (;;) {
    ssize_t n = read(s, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; i++) h = (h ^ buf[i]) * 16777619u;
    *total += (unsigned long)n;
  }
  return h;
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "listen")) {
    unsigned port = (unsigned)strtoul(argv[2], 0, 0);
    int count = atoi(argv[3]);
    int l = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a;
    memset(&a, 0, sizeof a);
    a.svm_family = AF_VSOCK;
    a.svm_cid = VMADDR_CID_ANY;
    a.svm_port = port;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 64) < 0) return fail("listen", port);
    printf("VSOCK-LISTENING port=%u\n", port);
    fflush(stdout);
    for (int i = 0; i < count; i++) {
      int c = accept(l, 0, 0);
      if (c < 0) return fail("accept", port);
      if (fork() == 0) {
        for (;;) {
          ssize_t n = read(c, buf, sizeof buf);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          for (ssize_t off = 0; off < n;) {
            ssize_t w = send(c, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0) _exit(1);
            off += w;
          }
        }
        close(c);
        _exit(0);
      }
      close(c);
    }
    while (wait(0) > 0) {}
    printf("VSOCK-SERVED %d\n", count);
    return 0;
  }
  if (argc >= 6 && !strcmp(argv[1], "send")) {
    unsigned port = (unsigned)strtoul(argv[3], 0, 0);
    unsigned long bytes = strtoul(argv[4], 0, 0), seed = strtoul(argv[5], 0, 0), total = 0;
    int s = dial((unsigned)strtoul(argv[2], 0, 0), port);
    if (s < 0) return fail("connect", port);
    for (unsigned long i = 0; i < bytes;) {
      size_t n = 0;
      for (; n < sizeof buf && i < bytes; n++, i++) buf[n] = (unsigned char)(seed * 31 + i * 7 + (i >> 8));
      for (size_t off = 0; off < n;) {
        ssize_t w = send(s, buf + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return fail("write", port);
        off += (size_t)w;
      }
    }
    shutdown(s, SHUT_WR);
    unsigned h = drain(s, &total);
    printf("VSOCK-SEND port=%u sent=%lu recv=%lu fnv=%08x\n", port, bytes, total, h);
    return 0;
  }
  if (argc >= 4 && !strcmp(argv[1], "recv")) {
    unsigned port = (unsigned)strtoul(argv[3], 0, 0);
    unsigned long total = 0;
    int s = dial((unsigned)strtoul(argv[2], 0, 0), port);
    if (s < 0) return fail("connect", port);
    unsigned h = drain(s, &total);
    printf("VSOCK-RECV port=%u recv=%lu fnv=%08x\n", port, total, h);
    return 0;
  }
  fprintf(stderr, "usage: vsock listen PORT N | send CID PORT BYTES SEED | recv CID PORT\n");
  return 1;
}
