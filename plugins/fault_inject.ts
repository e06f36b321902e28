/**
 * fault-inject: make virtio-blk requests fail with VIRTIO_BLK_S_IOERR, or drop virtio interrupts, on a
 * seeded schedule — to test guest error paths without a broken disk.
 *
 * `-plugin fault-inject,mode=ioerr,rate=0.05,seed=3` (mode ioerr | drop-irq; `device` picks one transport
 * by id, default every transport holding a virtio-blk).
 *
 * How: the plugin follows the driver's queue setup writes (legacy QueuePFN/GuestPageSize/QueueAlign and
 * modern QueueDesc/Avail/Used), and when the guest reads InterruptStatus (virtio-mmio §4.2.2; Linux
 * vm_interrupt reads it before looking at the used ring) it walks the used entries added since the last
 * look and, for the requests the schedule picks, rewrites the status byte (the last byte of the chain,
 * virtio spec §5.2.6) to IOERR. drop-irq answers InterruptStatus with 0 and acknowledges the interrupt
 * behind the guest's back, so that notification is lost. Drivers that poll without reading
 * InterruptStatus are not affected.
 * @module
 */
import { UserError } from "../core/types.ts";
import type { IoEvent, Plugin, PluginContext } from "./api.ts";
import { Prng } from "./_prng.ts";

const MAGIC = 0x000;
const DEVICE_ID = 0x008;
const GUEST_PAGE_SIZE = 0x028;
const QUEUE_SEL = 0x030;
const QUEUE_NUM = 0x038;
const QUEUE_ALIGN = 0x03c;
const QUEUE_PFN = 0x040;
const INTERRUPT_STATUS = 0x060;
const INTERRUPT_ACK = 0x064;
const STATUS = 0x070;
const QUEUE_DESC_LOW = 0x080;
const QUEUE_DESC_HIGH = 0x084;
const QUEUE_AVAIL_LOW = 0x090;
const QUEUE_AVAIL_HIGH = 0x094;
const QUEUE_USED_LOW = 0x0a0;
const QUEUE_USED_HIGH = 0x0a4;
const VIRTIO_ID_BLOCK = 2;
const VIRT_MAGIC = 0x74726976;
const VRING_DESC_F_NEXT = 1;
const VRING_DESC_F_INDIRECT = 4;
/** virtio spec §5.2.6: status byte values. */
export const VIRTIO_BLK_S_IOERR = 1;

interface QueueRegs {
  num: number;
  pfn: number;
  align: number;
  desc: number;
  avail: number;
  used: number;
  lastUsed: number;
}

function newQueue(): QueueRegs {
  return { num: 0, pfn: 0, align: 4096, desc: 0, avail: 0, used: 0, lastUsed: 0 };
}

/** The fault-inject plugin. */
export const plugin: Plugin = {
  name: "fault-inject",
  description: "virtio-blk I/O errors or dropped virtio interrupts on a seeded schedule",
  args: {
    mode: { type: "string", default: "ioerr", help: "ioerr or drop-irq" },
    rate: { type: "number", default: 0.05, help: "probability per request (ioerr) or interrupt (drop-irq)" },
    seed: { type: "number", default: 1, help: "PRNG seed" },
    device: { type: "string", default: "", help: "transport id (default: every virtio-blk transport)" },
  },
  setup(ctx: PluginContext) {
    const mode = String(ctx.args.mode);
    if (mode !== "ioerr" && mode !== "drop-irq") {
      throw new UserError(`Plugin "fault-inject": argument "mode" must be ioerr or drop-irq, got "${mode}"`);
    }
    const rng = new Prng(Number(ctx.args.seed));
    const rate = Number(ctx.args.rate);
    const want = String(ctx.args.device);
    const transports = ctx.regions("memory").filter((r) =>
      r.name === "virtio-mmio" && (want ? r.owner === want : true) &&
      ctx.access("memory", "read", r.start + MAGIC, 4) === VIRT_MAGIC &&
      (want !== ""
        ? ctx.access("memory", "read", r.start + DEVICE_ID, 4) !== 0
        : ctx.access("memory", "read", r.start + DEVICE_ID, 4) === VIRTIO_ID_BLOCK)
    );
    if (transports.length === 0) {
      throw new UserError(
        `Plugin "fault-inject": no ${want ? `transport "${want}" with a device` : "virtio-blk device"} found`,
      );
    }
    let injected = 0;
    for (const t of transports) {
      let sel = 0;
      let pageSize = 4096;
      const queues: QueueRegs[] = [];
      const q = () => (queues[sel] ??= newQueue());
      const setHalf = (key: "desc" | "avail" | "used", high: boolean, v: number) => {
        const cur = q()[key];
        q()[key] = high
          ? (cur % 0x1_0000_0000) + v * 0x1_0000_0000
          : Math.floor(cur / 0x1_0000_0000) * 0x1_0000_0000 + v;
      };
      const legacyLayout = (r: QueueRegs) => {
        r.desc = r.pfn * pageSize;
        r.avail = r.desc + 16 * r.num;
        const a = r.align || 4096;
        r.used = Math.ceil((r.avail + 6 + 2 * r.num) / a) * a;
      };
      const failStatus = (r: QueueRegs, head: number) => {
        // Walk the chain to its last descriptor (budget: queue size hops, as the device does).
        let table = r.desc;
        let size = r.num;
        let i = head;
        for (let hops = 0; hops <= r.num + 1; hops++) {
          const d = ctx.readMemory(table + 16 * (i % Math.max(size, 1)), 16);
          if (!d) return;
          const dv = new DataView(d.buffer);
          const addr = dv.getUint32(0, true) + dv.getUint32(4, true) * 0x1_0000_0000;
          const len = dv.getUint32(8, true);
          const flags = dv.getUint16(12, true);
          if (flags & VRING_DESC_F_INDIRECT) {
            table = addr;
            size = Math.floor(len / 16);
            i = 0;
            continue;
          }
          if (flags & VRING_DESC_F_NEXT) {
            i = dv.getUint16(14, true);
            continue;
          }
          if (len > 0 && ctx.writeMemory(addr + len - 1, Uint8Array.of(VIRTIO_BLK_S_IOERR))) injected++;
          return;
        }
      };
      const scanUsed = () => {
        for (const r of queues) {
          if (!r || r.num === 0 || r.used === 0) continue;
          const idxBytes = ctx.readMemory(r.used + 2, 2);
          if (!idxBytes) continue;
          const idx = idxBytes[0] | (idxBytes[1] << 8);
          for (let n = 0; r.lastUsed !== idx && n < 0x10000; n++) {
            const e = ctx.readMemory(r.used + 4 + 8 * (r.lastUsed % r.num), 4);
            r.lastUsed = (r.lastUsed + 1) & 0xffff;
            if (!e || !rng.chance(rate)) continue;
            failStatus(r, e[0] | (e[1] << 8) | (e[2] << 16) | (e[3] << 24));
          }
        }
      };
      ctx.onMmio({ ranges: [{ addr: t.start, size: t.size }] }, (ev: IoEvent) => {
        const off = ev.addr - t.start;
        if (ev.dir === "write") {
          const v = ev.value;
          switch (off) {
            case GUEST_PAGE_SIZE:
              pageSize = v;
              break;
            case QUEUE_SEL:
              sel = v & 0xff;
              break;
            case QUEUE_NUM:
              q().num = v;
              break;
            case QUEUE_ALIGN:
              q().align = v;
              break;
            case QUEUE_PFN:
              q().pfn = v;
              if (v === 0) queues.length = 0;
              else legacyLayout(q());
              break;
            case QUEUE_DESC_LOW:
            case QUEUE_DESC_HIGH:
              setHalf("desc", off === QUEUE_DESC_HIGH, v);
              break;
            case QUEUE_AVAIL_LOW:
            case QUEUE_AVAIL_HIGH:
              setHalf("avail", off === QUEUE_AVAIL_HIGH, v);
              break;
            case QUEUE_USED_LOW:
            case QUEUE_USED_HIGH:
              setHalf("used", off === QUEUE_USED_HIGH, v);
              break;
            case STATUS:
              if (v === 0) queues.length = 0; // device reset: rings forgotten
              break;
          }
          return;
        }
        if (off !== INTERRUPT_STATUS) return;
        if (mode === "ioerr") {
          scanUsed();
          return;
        }
        if (ev.value !== 0 && rng.chance(rate)) {
          injected++;
          ctx.access("memory", "write", t.start + INTERRUPT_ACK, 4, ev.value);
          ev.value = 0;
        }
      });
    }
    ctx.addMonitorCommand(
      "fault-inject",
      "faults injected so far",
      () => `fault-inject: ${injected} ${mode}\n`,
    );
    ctx.onUnload(() => {
      if (injected) ctx.print(`fault-inject: ${injected} ${mode} injected\n`);
    });
  },
};
