#!/usr/bin/env python3
"""Generate core/cpu/testgen/alu_vectors.txt: run each instruction natively (x86-64 host) on chosen
inputs and record rax/rcx/rdx/rflags after it, plus the instruction bytes.
Usage: python3 core/cpu/testgen/gen.py  (needs gcc; writes alu_vectors.txt beside this file)."""
import json, os, random, subprocess, tempfile

random.seed(12345)
W = {'b': ('al', 'cl', 'dl', 8), 'w': ('ax', 'cx', 'dx', 16), 'l': ('eax', 'ecx', 'edx', 32), 'q': ('rax', 'rcx', 'rdx', 64)}
CF, PF, AF, ZF, SF, OF = 1, 4, 0x10, 0x40, 0x80, 0x800
ALL = CF | PF | AF | ZF | SF | OF
cases = []  # (name, asm, flagmask, kind)

def add(name, asm, mask=ALL, kind='any'):
    cases.append((name, asm, mask, kind))

for op in ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp']:
    for s, (a, c, d, bits) in W.items():
        m = ALL if op in ('add', 'adc', 'sbb', 'sub', 'cmp') else ALL & ~AF
        add(f'{op}{s} r,r', f'{op}{s} %{c}, %{a}', m)
    m = ALL if op in ('add', 'adc', 'sbb', 'sub', 'cmp') else ALL & ~AF
    add(f'{op}q imm8', f'{op}q $-5, %rax', m)
    add(f'{op}l imm32', f'{op}l $0x12345678, %eax', m)
    add(f'{op}b imm8', f'{op}b $0x85, %al', m)
    add(f'{op}w imm16', f'{op}w $0x8001, %cx', m)
    add(f'{op}q imm32', f'{op}q $-0x12345678, %rdx', m)
for op in ['inc', 'dec', 'neg', 'not']:
    for s, (a, c, d, bits) in W.items():
        add(f'{op}{s}', f'{op}{s} %{a}', ALL)
for op in ['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr']:
    for s, (a, c, d, bits) in W.items():
        rot = op in ('rol', 'ror', 'rcl', 'rcr')
        base = (CF | OF) if rot else ALL & ~AF
        add(f'{op}{s} 1', f'{op}{s} $1, %{a}', base)
        add(f'{op}{s} cl', f'{op}{s} %cl, %{a}', base & ~OF, 'count')
        add(f'{op}{s} 7', f'{op}{s} $7, %{a}', base & ~OF)
for op in ['shld', 'shrd']:
    for s in 'wlq':
        a, c, d, bits = W[s]
        add(f'{op}{s} cl', f'{op}{s} %cl, %{d}, %{a}', ALL & ~AF & ~OF, 'count16' if s == 'w' else 'count')
        add(f'{op}{s} 1', f'{op}{s} $1, %{d}, %{a}', ALL & ~AF)
for op in ['mul', 'imul']:
    for s, (a, c, d, bits) in W.items():
        add(f'{op}{s} 1op', f'{op}{s} %{c}', CF | OF)
for s in 'wlq':
    a, c, d, bits = W[s]
    add(f'imul{s} 2op', f'imul{s} %{c}, %{a}', CF | OF)
    add(f'imul{s} 3op imm8', f'imul{s} $-123, %{c}, %{a}', CF | OF)
    add(f'imul{s} 3op imm', f'imul{s} $0x1235, %{c}, %{a}', CF | OF)
for op in ['div', 'idiv']:
    for s, (a, c, d, bits) in W.items():
        add(f'{op}{s}', f'{op}{s} %{c}', 0, op)
for op in ['bsf', 'bsr']:
    for s in 'wlq':
        a, c, d, bits = W[s]
        add(f'{op}{s}', f'{op}{s} %{c}, %{a}', ZF, 'nonzero')
for op in ['bt', 'bts', 'btr', 'btc']:
    for s in 'wlq':
        a, c, d, bits = W[s]
        add(f'{op}{s} r', f'{op}{s} %{c}, %{a}', CF)
    add(f'{op}q imm', f'{op}q $37, %rax', CF)
    add(f'{op}l imm', f'{op}l $13, %eax', CF)
for s, (a, c, d, bits) in W.items():
    add(f'xadd{s}', f'xadd{s} %{c}, %{a}', ALL)
    add(f'cmpxchg{s}', f'cmpxchg{s} %{c}, %{d}', ALL, 'cmpxchg')
for asm in ['movsbq %cl, %rax', 'movswl %cx, %eax', 'movzbl %cl, %eax', 'movzwq %cx, %rax', 'movslq %ecx, %rax',
            'movsbw %cl, %ax', 'movzbw %cl, %ax', 'cbtw', 'cwtl', 'cltq', 'cwtd', 'cltd', 'cqto', 'bswapl %eax',
            'bswapq %rax', 'sahf', 'lahf', 'cmc', 'clc', 'stc', 'movl %ecx, %eax', 'movw %cx, %ax', 'movb %cl, %ah',
            'movb %ch, %al', 'xchgl %ecx, %eax', 'xchgq %rcx, %rdx', 'leal 7(%rcx,%rdx,4), %eax',
            'leaq -9(%rcx,%rdx,8), %rax', 'leaw 3(%rcx), %ax', 'movabsq $0x123456789abcdef0, %rdx']:
    add(asm, asm, ALL if asm in ('sahf', 'cmc', 'clc', 'stc') else 0)
ccs = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g']
for cc in ccs:
    for s in 'bwlq':
        a, c, d, bits = W[s]
        add(f'cmp{s}+set{cc}', f'cmp{s} %{c}, %{a}\n set{cc} %dl', ALL, 'cmp')
    add(f'add+set{cc}', f'addl %ecx, %eax\n set{cc} %dl', ALL)
    add(f'test+set{cc}', f'testq %rcx, %rax\n set{cc} %dl', ALL & ~AF)
    add(f'sub+cmov{cc}', f'subq %rcx, %rax\n cmov{cc}q %rcx, %rdx', ALL)
    add(f'inc+cmov{cc}l', f'incl %eax\n cmov{cc}l %ecx, %edx', ALL)
    add(f'shl+set{cc}', f'shlq $3, %rax\n set{cc} %dl', ALL & ~AF)
    add(f'imul+set{cc}', f'imulq %rcx, %rax\n setc %dl', CF | OF)

SPECIAL = [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
           0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff, 0x100000000, 0xfffffffe]
M64 = (1 << 64) - 1

def rnd():
    r = random.random()
    if r < 0.3:
        return random.choice(SPECIAL)
    if r < 0.5:
        return random.getrandbits(random.choice([8, 16, 32]))
    v = random.getrandbits(64)
    if r < 0.6:
        v = (-random.getrandbits(20)) & M64
    return v

def inputs(kind, asm):
    out = []
    for i in range(32):
        a, c, d = rnd(), rnd(), rnd()
        f = random.choice([0, ALL]) if i < 4 else random.getrandbits(12) & ALL
        if kind == 'count':
            c = (c & ~0xff) | random.choice([0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, random.getrandbits(8)])
        if kind == 'count16':
            c = (c & ~0xff) | random.choice([0, 1, 2, 7, 8, 15, 16])
        if kind == 'nonzero' and c & 0xffff == 0:
            c |= 1 << random.getrandbits(4)
        if kind in ('div', 'idiv'):
            w = 8 if 'b ' in asm or asm.endswith('%cl') else 16 if asm.endswith('%cx') else 32 if asm.endswith('%ecx') else 64
            mask = (1 << w) - 1
            if c & mask == 0:
                c |= 3
            dv = c & mask
            if kind == 'div':
                if w == 8:
                    a = (a & ~0xffff) | (random.getrandbits(16) % (dv << 8))
                else:
                    d = (d & ~mask) | (random.getrandbits(w) % dv)
            else:
                # small dividend: sign-extended rax into rdx keeps the quotient in range.
                sv = dv - (1 << w) if dv >> (w - 1) else dv
                if w == 8:
                    q = random.randint(-100, 100)
                    a = (a & ~0xffff) | ((q * sv + random.randint(0, abs(sv) - 1) * (1 if q >= 0 else -1)) & 0xffff)
                    if not (-128 <= int(((a & 0xffff) ^ 0x8000) - 0x8000) // sv <= 127):
                        a = (a & ~0xffff) | 7
                else:
                    x = random.getrandbits(w - 2) - (1 << (w - 3))
                    a = (a & ~mask) | (x & mask)
                    d = (d & ~mask) | ((-1 if x < 0 else 0) & mask)
        if kind == 'cmpxchg' and random.random() < 0.5:
            w = {'b': 8, 'w': 16, 'l': 32, 'q': 64}[asm[7]]
            mask = (1 << w) - 1
            d = (d & ~mask) | (a & mask)
        if kind == 'cmp' and random.random() < 0.3:
            c = a
        out.append((a, c, d, f | 2))
    return out

src = ['#include <stdio.h>', '#include <stdint.h>']
for i, (name, asm, mask, kind) in enumerate(cases):
    body = asm.replace('%', '%%').replace('\n', '\\n')
    src.append(f'extern const unsigned char s_{i}[], e_{i}[];')
    src.append(f'static void run_{i}(uint64_t *r) {{ uint64_t a=r[0], c=r[1], d=r[2], f=r[3];')
    src.append(f'  __asm__ volatile("push %3\\n popfq\\n .globl s_{i}\\n s_{i}:\\n {body}\\n .globl e_{i}\\n e_{i}:\\n pushfq\\n pop %3\\n" : "+a"(a), "+c"(c), "+d"(d), "+r"(f) :: "cc", "memory");')
    src.append('  r[0]=a; r[1]=c; r[2]=d; r[3]=f; }')
src.append('int main(void) { uint64_t r[4];')
allin = []
for i, (name, asm, mask, kind) in enumerate(cases):
    ins = inputs(kind, asm)
    allin.append(ins)
    src.append(f'  printf("C {i} "); for (const unsigned char *p = s_{i}; p < e_{i}; p++) printf("%02x", *p); printf("\\n");')
    for (a, c, d, f) in ins:
        src.append(f'  r[0]={a}ull; r[1]={c}ull; r[2]={d}ull; r[3]={f}ull; run_{i}(r); printf("R %llx %llx %llx %llx\\n", (unsigned long long)r[0], (unsigned long long)r[1], (unsigned long long)r[2], (unsigned long long)r[3]);')
src.append('  return 0; }')
with tempfile.TemporaryDirectory() as t:
    open(f'{t}/g.c', 'w').write('\n'.join(src))
    subprocess.check_call(['gcc', '-O1', '-mno-red-zone', '-o', f'{t}/g', f'{t}/g.c'])
    out = subprocess.check_output([f'{t}/g']).decode().split('\n')
vectors = []
cur = None
k = 0
for line in out:
    if line.startswith('C '):
        _, idx, code = line.split()
        idx = int(idx)
        name, asm, mask, kind = cases[idx]
        cur = {'name': name, 'asm': asm, 'bytes': code, 'flagMask': mask, 'cases': []}
        vectors.append(cur)
        k = 0
    elif line.startswith('R '):
        a, c, d, f = allin[len(vectors) - 1][k]
        k += 1
        ra, rc, rd, rf = line.split()[1:]
        cur['cases'].append([f'{a:x}', f'{c:x}', f'{d:x}', f'{f:x}', ra, rc, rd, rf])
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'alu_vectors.txt')
with open(path, 'w') as fp:
    # Plain text so formatters leave it alone. "I <flagMask> <bytes> <asm>" then one "C" line per case:
    # inputs rax rcx rdx rflags, then outputs rax rcx rdx rflags (hex).
    fp.write('# core/cpu/testgen/gen.py run natively on x86-64 (AMD EPYC); regenerate with python3 core/cpu/testgen/gen.py\n')
    for v in vectors:
        fp.write(f"I {v['flagMask']} {v['bytes']} {v['asm'].replace(chr(10), ';')}\n")
        for k in v['cases']:
            fp.write('C ' + ' '.join(k) + '\n')
print(len(vectors), 'instructions,', sum(len(v['cases']) for v in vectors), 'cases')
