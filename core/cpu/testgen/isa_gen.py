#!/usr/bin/env python3
"""Generate core/cpu/testgen/isa_vectors.txt: golden vectors for the ISA extensions (BMI, ADX, MOVBE, CRC32,
SSE3..SSE4.2, AVX/AVX2, FMA, F16C), run natively on this x86-64 host.

Each instruction runs on states drawn from a seeded xorshift32 stream (seed = FNV-1a of the name; the same
recipe is in isa_vectors_test.ts, so inputs are not stored): rax rcx rdx rbx, rflags, MXCSR (rounding mode,
DAZ/FTZ, sticky flags), ymm0-3 and a 64-byte buffer at rsi. Recorded: the fields that changed.
Usage: python3 core/cpu/testgen/isa_gen.py  (needs gcc and a host with AVX2/BMI2/ADX/FMA/F16C)."""
import os, subprocess, tempfile, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from isa_list import INSNS

M32 = 0xffffffff

class Rng:
    def __init__(self, seed):
        self.x = seed or 1
    def next(self):
        x = self.x
        x ^= (x << 13) & M32
        x ^= x >> 17
        x ^= (x << 5) & M32
        self.x = x
        return x

def fnv(s):
    h = 0x811c9dc5
    for ch in s.encode():
        h = ((h ^ ch) * 0x01000193) & M32
    return h

F32S = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x7fa00000, 1, 0x807fffff,
        0x7f7fffff, 0x00800000, 0x3f800000, 0x4f000000, 0xcf000000, 0x5f000000, 0x3f000000, 0xbfc00000]
F64S = [0, 1 << 63, 0x7ff << 52, 0xfff << 52, 0x7ff8 << 48, 0xfff8000000000001, 0x7ff0000000000001,
        0x7ff4000000000000, 1, 0x800fffffffffffff, 0x7fefffffffffffff, 1 << 52, 0x3ff << 52, 0x41e0000000000000,
        0xc1e0000000000000, 0x43e0000000000000, 0x3fe0000000000000, 0xbff8000000000000]

def lanes(r, kind, nbytes):
    out = bytearray()
    if kind == 'f64':
        for _ in range(nbytes // 8):
            k = r.next() % 10
            if k < 3:
                v = F64S[r.next() % len(F64S)]
            else:
                e = 1023 - 12 + r.next() % 24
                v = ((r.next() & 1) << 63) | (e << 52) | ((r.next() & 0xfffff) << 32) | r.next()
            out += v.to_bytes(8, 'little')
        return out
    for _ in range(nbytes // 4):
        if kind == 'f32':
            k = r.next() % 10
            if k < 3:
                v = F32S[r.next() % len(F32S)]
            else:
                v = ((r.next() & 1) << 31) | ((127 - 12 + r.next() % 24) << 23) | (r.next() & 0x7fffff)
        elif kind == 's':
            v = 0
            for b in range(4):
                ch = 0 if r.next() % 6 == 0 else 0x61 + r.next() % 4
                v |= ch << (8 * b)
        else:
            k = r.next() % 8
            v = 0 if k == 0 else M32 if k == 1 else (r.next() & 0x80ff00ff) if k == 2 else r.next()
        out += v.to_bytes(4, 'little')
    return out

def gpr(r):
    k = r.next() % 8
    if k == 0: return 0
    if k == 1: return r.next() % 70
    if k == 2: return (1 << 64) - 1
    if k == 3: return 1 << (r.next() % 64)
    if k == 4: return (r.next() % 70) | ((r.next() % 70) << 8)
    hi = r.next()
    return (hi << 32) | r.next()

def state(name, kind, fp):
    """(gprs[4], flags, mxcsr, ymm bytes[128], mem bytes[64])."""
    r = Rng(fnv(name))
    g = [gpr(r) for _ in range(4)]
    flags = 0x202 | (r.next() & 0x8d5)
    mx = 0x1f80
    if fp:
        mx |= (r.next() % 4) << 13
        if r.next() % 4 == 0: mx |= 0x8040
        if r.next() % 2: mx |= r.next() & 0x3f
    y = lanes(r, kind, 128)
    m = lanes(r, kind, 64)
    return g, flags, mx, y, m

NCASE = 12
GN = ['rax', 'rcx', 'rdx', 'rbx']

def main():
    src = ['#include <stdio.h>', '#include <stdint.h>', '#include <string.h>',
           'struct St { uint64_t g[4]; uint64_t f; uint32_t mx; uint32_t pad[5]; uint8_t y[128]; uint8_t m[64]; } __attribute__((aligned(64)));']
    for i, ins in enumerate(INSNS):
        body = ins['asm'].replace(';', '\\n')
        src.append(f'extern const unsigned char s_{i}[], e_{i}[];')
        src.append(f'static void run_{i}(struct St *s) {{ __asm__ volatile(')
        src.append('"mov %0, %%rdi\\n vmovdqu 64(%%rdi), %%ymm0\\n vmovdqu 96(%%rdi), %%ymm1\\n vmovdqu 128(%%rdi), %%ymm2\\n vmovdqu 160(%%rdi), %%ymm3\\n"')
        src.append('"ldmxcsr 40(%%rdi)\\n pushq 32(%%rdi)\\n popfq\\n mov (%%rdi), %%rax\\n mov 8(%%rdi), %%rcx\\n mov 16(%%rdi), %%rdx\\n mov 24(%%rdi), %%rbx\\n lea 192(%%rdi), %%rsi\\n"')
        src.append(f'".intel_syntax noprefix\\n .globl s_{i}\\n s_{i}:\\n {body}\\n .globl e_{i}\\n e_{i}:\\n .att_syntax prefix\\n"')
        src.append('"mov %%rax, (%%rdi)\\n mov %%rcx, 8(%%rdi)\\n mov %%rdx, 16(%%rdi)\\n mov %%rbx, 24(%%rdi)\\n pushfq\\n popq 32(%%rdi)\\n stmxcsr 40(%%rdi)\\n"')
        src.append('"vmovdqu %%ymm0, 64(%%rdi)\\n vmovdqu %%ymm1, 96(%%rdi)\\n vmovdqu %%ymm2, 128(%%rdi)\\n vmovdqu %%ymm3, 160(%%rdi)\\n vzeroupper\\n"')
        src.append(':: "r"(s) : "rax","rbx","rcx","rdx","rsi","rdi","memory","cc","xmm0","xmm1","xmm2","xmm3"); }')
    src.append('static void dump(struct St *s) { printf("R"); for (int i = 0; i < 4; i++) printf(" %llx", (unsigned long long)s->g[i]);')
    src.append('  printf(" %llx %x ", (unsigned long long)s->f, s->mx); for (int i = 0; i < 128; i++) printf("%02x", s->y[i]); printf(" ");')
    src.append('  for (int i = 0; i < 64; i++) printf("%02x", s->m[i]); printf("\\n"); }')
    src.append('static const uint8_t IN[] = {')
    states = []
    blob = bytearray()
    for ins in INSNS:
        st = []
        for k in range(NCASE):
            g, f, mx, y, m = state(f"{ins['name']}#{k}", ins.get('kind', 'i'), ins.get('fp', False))
            st.append((g, f, mx, y, m))
            b = bytearray(256)
            for j in range(4): b[8 * j:8 * j + 8] = g[j].to_bytes(8, 'little')
            b[32:40] = f.to_bytes(8, 'little'); b[40:44] = mx.to_bytes(4, 'little')
            b[64:192] = y; b[192:256] = m
            blob += b
        states.append(st)
    src.append(','.join(str(x) for x in blob) + '};')
    src.append('int main(void) { static struct St s; const uint8_t *p = IN;')
    for i, ins in enumerate(INSNS):
        src.append(f'  printf("C {i} "); for (const unsigned char *q = s_{i}; q < e_{i}; q++) printf("%02x", *q); printf("\\n");')
        src.append(f'  for (int k = 0; k < {NCASE}; k++, p += 256) {{ memcpy(&s, p, 256); run_{i}(&s); dump(&s); }}')
    src.append('  return 0; }')
    with tempfile.TemporaryDirectory() as t:
        open(f'{t}/g.c', 'w').write('\n'.join(src))
        subprocess.check_call(['gcc', '-O1', '-mno-red-zone', '-mavx2', '-o', f'{t}/g', f'{t}/g.c'])
        out = subprocess.check_output([f'{t}/g']).decode().split('\n')
    lines = ['# isa_gen.py run natively on x86-64 (' + cpu_name() + '). "I name|undefined-flags|bytes|asm|kind|fp" then',
             '# one "C" line per case: the fields that changed (rax rcx rdx rbx f=rflags m=mxcsr y0-y3 mem), hex.']
    idx = -1
    k = 0
    for line in out:
        if line.startswith('C '):
            _, i, code = line.split()
            idx = int(i)
            ins = INSNS[idx]
            lines.append(f"I {ins['name']}|{ins.get('undef', 0):x}|{code}|{ins['asm']}|{ins.get('kind', 'i')}|{int(ins.get('fp', False))}")
            k = 0
        elif line.startswith('R '):
            g, f, mx, y, m = states[idx][k]
            k += 1
            parts = line.split()[1:]
            diff = []
            for j in range(4):
                if int(parts[j], 16) != g[j]: diff.append(f'{GN[j]}={parts[j]}')
            diff.append(f'f={int(parts[4], 16) & 0xfd5:x}')
            if int(parts[5], 16) != mx: diff.append(f'm={parts[5]}')
            ys = bytes.fromhex(parts[6])
            for j in range(4):
                if ys[32 * j:32 * j + 32] != y[32 * j:32 * j + 32]: diff.append(f'y{j}={ys[32 * j:32 * j + 32].hex()}')
            if bytes.fromhex(parts[7]) != m: diff.append(f'mem={parts[7]}')
            lines.append('C ' + ' '.join(diff))
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'isa_vectors.txt')
    open(path, 'w').write('\n'.join(lines) + '\n')
    print(len(INSNS), 'instructions', file=sys.stderr)

def cpu_name():
    for l in open('/proc/cpuinfo'):
        if l.startswith('model name'): return l.split(':', 1)[1].strip()
    return '?'

main()
