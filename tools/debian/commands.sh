#!/bin/sh
# The fixed command list compared between the guest (software CPU) and the host (chroot of the same image).
# Each command's output (stdout+stderr) is framed by CMP-BEGIN / CMP-END lines; ms is wall time inside the
# system that ran it. Installed into the image as /cmp-commands by build-image.sh.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
run() {
  n=$1
  shift
  echo "CMP-BEGIN $n"
  t0=$(date +%s%N)
  sh -c "$1" 2>&1
  rc=$?
  t1=$(date +%s%N)
  echo "CMP-END $n rc=$rc ms=$(((t1 - t0) / 1000000))"
}
run seq 'seq 1 0.5 5'
run printf "/usr/bin/printf '%.20Lf\n' 1.1"
run python3 "python3 -c 'import math,sys; print(math.pi, sum(i*i for i in range(10**5)), 2**100, float(\"1e308\")*10, sys.float_info)'"
run python3-float "python3 -c 'import math; print([math.sin(x/7) for x in range(5)], math.fsum([0.1]*10), (1e16+1.5).hex(), round(2.675, 2), 7.0/3, math.lgamma(4.5), math.log1p(1e-10), 10**40//7, pow(3, 200, 10**9+7), \"%.30e\" % (1/3))'"
run sha256sum 'head -c 4000000 /usr/bin/python3 | sha256sum'
run sort 'sort -r /var/lib/dpkg/status | head -c 100000 | sha256sum; seq 1 5000 | sort -n -r | head -3; printf "b 2\na 10\nc 1\n" | sort -k2,2n'
run awk 'command -v awk >/dev/null || { echo no-awk; exit 0; }; awk "BEGIN { s = 0; for (i = 1; i <= 100000; i++) s += sqrt(i); printf \"%.10f %g %d %.17g\n\", s, exp(1), 2^31, 1/3 }"'
run perl 'command -v perl >/dev/null || { echo no-perl; exit 0; }; perl -e "my \$s = 0; \$s += sin(\$_) for 1..10000; printf qq(%.15g %s %.20g\n), \$s, 2**0.5, 1e300*1e10; print join(q(,), sort { \$a <=> \$b } (5, 3, 9, -1)), qq(\n)"'
run factor 'factor 600851475143 1234567891011 4294967291'
run date 'date -u -d @1234567890 "+%Y-%m-%d %H:%M:%S %j %s"'
run md5sum 'seq 1 100000 | md5sum'
