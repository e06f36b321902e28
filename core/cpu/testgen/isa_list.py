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

# --- SSSE3, SSE4.1, SSE4.2
for op in ['pshufb', 'phaddw', 'phaddd', 'phaddsw', 'pmaddubsw', 'phsubw', 'phsubd', 'phsubsw', 'psignb', 'psignw',
           'psignd', 'pmulhrsw', 'pabsb', 'pabsw', 'pabsd']:
    add(op, f'{op} xmm0, xmm1')
    add(f'{op} m', f'{op} xmm2, xmmword ptr [rsi+16]')
for imm in [0, 3, 15, 16, 17, 31, 32]:
    add(f'palignr {imm}', f'palignr xmm0, xmm1, {imm}')
for op in ['pblendvb', 'blendvps', 'blendvpd']:
    add(op, f'{op} xmm1, xmm2, xmm0')
for op in ['pmovsxbw', 'pmovsxbd', 'pmovsxbq', 'pmovsxwd', 'pmovsxwq', 'pmovsxdq', 'pmovzxbw', 'pmovzxbd',
           'pmovzxbq', 'pmovzxwd', 'pmovzxwq', 'pmovzxdq']:
    add(op, f'{op} xmm0, xmm1')
    add(f'{op} m', f'{op} xmm0, [rsi+3]')
for op in ['pmuldq', 'pcmpeqq', 'packusdw', 'pminsb', 'pminsd', 'pminuw', 'pminud', 'pmaxsb', 'pmaxsd', 'pmaxuw',
           'pmaxud', 'pmulld', 'phminposuw', 'pcmpgtq']:
    add(op, f'{op} xmm0, xmm1')
add('pcmpeqq same', 'pcmpeqq xmm0, xmm0')
add('ptest', 'ptest xmm0, xmm1')
add('ptest same', 'ptest xmm1, xmm1')
add('movntdqa', 'movntdqa xmm1, [rsi+16]')
for imm in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]:
    add(f'roundps {imm}', f'roundps xmm0, xmm1, {imm}', 'f32', True)
    add(f'roundpd {imm}', f'roundpd xmm0, xmm1, {imm}', 'f64', True)
add('roundss', 'roundss xmm0, xmm1, 1', 'f32', True)
add('roundsd', 'roundsd xmm0, xmm1, 10', 'f64', True)
add('roundss m', 'roundss xmm0, [rsi+4], 4', 'f32', True)
for imm in [0x00, 0x5a, 0xff, 0xa5]:
    add(f'blendps {imm}', f'blendps xmm0, xmm1, {imm & 15}')
    add(f'blendpd {imm}', f'blendpd xmm0, xmm1, {imm & 3}')
    add(f'pblendw {imm}', f'pblendw xmm0, xmm1, {imm}')
for imm in [0xff, 0xf1, 0x31, 0x7f, 0x95]:
    add(f'dpps {imm}', f'dpps xmm0, xmm1, {imm}', 'f32', True)
for imm in [0x33, 0x31, 0x12]:
    add(f'dppd {imm}', f'dppd xmm0, xmm1, {imm}', 'f64', True)
for imm in [0, 1, 2, 3, 4, 7]:
    add(f'mpsadbw {imm}', f'mpsadbw xmm0, xmm1, {imm}')
for a in ['pextrb eax, xmm1, 5', 'pextrb byte ptr [rsi+1], xmm1, 15', 'pextrw eax, xmm1, 6',
          'pextrw word ptr [rsi+2], xmm1, 3', 'pextrd ebx, xmm2, 3', 'pextrd [rsi+4], xmm2, 1', 'pextrq rax, xmm3, 1',
          'pextrq [rsi+8], xmm3, 0', 'extractps ecx, xmm1, 2', 'extractps [rsi], xmm1, 3', 'pinsrb xmm0, ebx, 9',
          'pinsrb xmm0, byte ptr [rsi+7], 15', 'pinsrd xmm1, ecx, 2', 'pinsrd xmm1, [rsi], 3', 'pinsrq xmm2, rdx, 1',
          'pinsrq xmm2, [rsi+8], 0', 'insertps xmm0, xmm1, 0x4a', 'insertps xmm0, xmm1, 0xf0',
          'insertps xmm0, [rsi+4], 0x35', 'crc32 eax, bx', 'crc32 eax, ebx']:
    add(a, a)
for op in ['pcmpestri', 'pcmpestrm', 'pcmpistri', 'pcmpistrm']:
    for imm in [0x00, 0x01, 0x04, 0x08, 0x0c, 0x0d, 0x14, 0x18, 0x1a, 0x30, 0x34, 0x38, 0x3c, 0x40, 0x44, 0x4c, 0x70, 0x02, 0x45]:
        add(f'{op} {imm}', f'{op} xmm1, xmm2, {imm}', 's')
    add(f'{op} m', f'{op} xmm1, [rsi+5], 0x0c', 's')
add('pcmpestri q', 'pcmpestri xmm1, xmm2, 0x0c', 's')
