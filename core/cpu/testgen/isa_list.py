"""Instructions for isa_gen.py: name, Intel-syntax asm (';' separates), input kind (i f32 f64 s), fp (MXCSR
varies), undef (rflags bits the SDM leaves undefined). rsi points at the 64-byte buffer."""
CF, PF, AF, ZF, SF, OF = 1, 4, 0x10, 0x40, 0x80, 0x800
INSNS = []

def add(name, asm=None, kind='i', fp=False, undef=0):
    INSNS.append({'name': name, 'asm': asm or name, 'kind': kind, 'fp': fp, 'undef': undef})

# --- scalar bit manipulation (BMI1, BMI2, ABM, ADX, MOVBE, CRC32, POPCNT)
for w, (a, b, c) in {'q': ('rax', 'rbx', 'rcx'), 'd': ('eax', 'ebx', 'ecx')}.items():
    add(f'andn {a}', f'andn {a}, {b}, {c}', undef=AF | PF)
    add(f'andn {a} m', f'andn {a}, {b}, [rsi]', undef=AF | PF)
    add(f'bextr {a}', f'bextr {a}, {b}, {c}', undef=AF | PF | SF)
    add(f'blsi {a}', f'blsi {a}, {b}', undef=AF | PF)
    add(f'blsmsk {a}', f'blsmsk {a}, {b}', undef=AF | PF)
    add(f'blsr {a}', f'blsr {a}, {b}', undef=AF | PF)
    add(f'bzhi {a}', f'bzhi {a}, {b}, {c}', undef=AF | PF)
    add(f'mulx {a}', f'mulx {a}, {b}, {c}')
    add(f'mulx {a} same', f'mulx {a}, {a}, {c}')
    add(f'pdep {a}', f'pdep {a}, {b}, {c}')
    add(f'pext {a}', f'pext {a}, {b}, {c}')
    add(f'rorx {a}', f'rorx {a}, {b}, 13')
    add(f'rorx {a} 0', f'rorx {a}, {b}, 0')
    for op in ['sarx', 'shlx', 'shrx']:
        add(f'{op} {a}', f'{op} {a}, {b}, {c}')
    add(f'adcx {a}', f'adcx {a}, {b}')
    add(f'adox {a}', f'adox {a}, {b}')
    add(f'lzcnt {a}', f'lzcnt {a}, {b}', undef=OF | SF | PF | AF)
    add(f'tzcnt {a}', f'tzcnt {a}, {b}', undef=OF | SF | PF | AF)
    add(f'popcnt {a}', f'popcnt {a}, {b}')
    add(f'movbe {a} load', f'movbe {a}, [rsi+3]')
    add(f'movbe {a} store', f'movbe [rsi+5], {b}')
    add(f'crc32 {a} q', f'crc32 {a}, {"rbx" if w == "q" else "ebx"}')
add('lzcnt ax', 'lzcnt ax, bx', undef=OF | SF | PF | AF)
add('tzcnt ax', 'tzcnt ax, bx', undef=OF | SF | PF | AF)
add('popcnt ax', 'popcnt ax, bx')
add('movbe ax load', 'movbe ax, [rsi+1]')
add('movbe ax store', 'movbe [rsi+1], bx')
add('crc32 eax b', 'crc32 eax, bl')
add('crc32 eax w', 'crc32 eax, bx')
add('crc32 eax mb', 'crc32 eax, byte ptr [rsi]')
add('crc32 rax mq', 'crc32 rax, qword ptr [rsi]')
add('adc chain', 'adcx rax, rbx;adox rcx, rdx;adcx rax, rcx')

# --- SSE/SSE2 floating point with MXCSR (rounding, DAZ/FTZ, flags), SSE3
for op in ['add', 'sub', 'mul', 'div', 'min', 'max', 'sqrt']:
    for sfx, kind in [('ps', 'f32'), ('pd', 'f64'), ('ss', 'f32'), ('sd', 'f64')]:
        add(f'{op}{sfx}', f'{op}{sfx} xmm0, xmm1', kind, True)
        add(f'{op}{sfx} m', f'{op}{sfx} xmm2, {"xmmword ptr " if sfx[0] == "p" else ""}[rsi]', kind, True)
for pred in range(8):
    for sfx, kind in [('ps', 'f32'), ('pd', 'f64'), ('ss', 'f32'), ('sd', 'f64')]:
        add(f'cmp{sfx} {pred}', f'cmp{sfx} xmm0, xmm1, {pred}', kind, True)
for op in ['comiss', 'ucomiss']:
    add(op, f'{op} xmm0, xmm1', 'f32', True)
for op in ['comisd', 'ucomisd']:
    add(op, f'{op} xmm0, xmm1', 'f64', True)
for a, kind in [('cvtss2sd xmm0, xmm1', 'f32'), ('cvtsd2ss xmm0, xmm1', 'f64'), ('cvtps2pd xmm0, xmm1', 'f32'),
                ('cvtpd2ps xmm0, xmm1', 'f64'), ('cvtdq2ps xmm0, xmm1', 'i'), ('cvtps2dq xmm0, xmm1', 'f32'),
                ('cvttps2dq xmm0, xmm1', 'f32'), ('cvtdq2pd xmm0, xmm1', 'i'), ('cvtpd2dq xmm0, xmm1', 'f64'),
                ('cvttpd2dq xmm0, xmm1', 'f64'), ('cvtss2si eax, xmm1', 'f32'), ('cvttss2si eax, xmm1', 'f32'),
                ('cvtss2si rax, xmm1', 'f32'), ('cvttss2si rax, xmm1', 'f32'), ('cvtsd2si eax, xmm1', 'f64'),
                ('cvttsd2si eax, xmm1', 'f64'), ('cvtsd2si rax, xmm1', 'f64'), ('cvttsd2si rax, xmm1', 'f64'),
                ('cvtsi2ss xmm0, ebx', 'i'), ('cvtsi2ss xmm0, rbx', 'i'), ('cvtsi2sd xmm0, ebx', 'i'),
                ('cvtsi2sd xmm0, rbx', 'i'), ('cvtsd2ss xmm0, qword ptr [rsi]', 'f64')]:
    add(a, a, kind, True)
for a, kind in [('addsubps xmm0, xmm1', 'f32'), ('addsubpd xmm0, xmm1', 'f64'), ('haddps xmm0, xmm1', 'f32'),
                ('haddpd xmm0, xmm1', 'f64'), ('hsubps xmm0, xmm1', 'f32'), ('hsubpd xmm0, xmm1', 'f64'),
                ('haddps xmm0, xmmword ptr [rsi]', 'f32'), ('movsldup xmm0, xmm1', 'i'),
                ('movshdup xmm0, xmm1', 'i'), ('movddup xmm0, xmm1', 'i'), ('movddup xmm0, qword ptr [rsi+8]', 'i'),
                ('lddqu xmm0, [rsi+3]', 'i'), ('movups xmm1, [rsi+4]', 'i'), ('movdqu [rsi+1], xmm2', 'i')]:
    add(a, a, kind, True)
