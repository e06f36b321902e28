#!/bin/sh
# init= of the Debian compare image: mount the pseudo file systems, run /cmp-commands, print CMP-DONE.
# tools/debian/compare.ts kills the VMM once it has seen CMP-DONE.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
echo CMP-INIT-OK
/cmp-commands
echo CMP-DONE
while :; do sleep 1000; done
