/**
 * virtio-serial ("virtio-serial-device") with its ports: "virtconsole" (a console port, Linux's hvc0) and
 * "virtserialport" (a named port, /dev/vportNpM). Multiport control messages follow virtio 1.2 §5.3.6 and
 * what Linux drivers/char/virtio_console.c expects; the device side mirrors QEMU 7.2 hw/char/virtio-serial-bus.c
 * and hw/char/virtio-console.c. Each port is wired to a CharBackend; host input obeys ring room (CharReceiver).
 * @module
 */
import {
  type CharBackend,
  type CharReceiver,
  type DeviceState,
  type PropDef,
  StateError,
  UserError,
} from "../../core/types.ts";
import {
  commonFeatures,
  commonPropertyValues,
  configRead,
  featureBit,
  VIRTIO_COMMON_PROPS,
  VIRTIO_ID_CONSOLE,
  type VirtioCommon,
  virtioCommon,
  type VirtioCommonOptions,
  type VirtioContext,
  type VirtioDevice,
} from "./device.ts";

/** Feature bits (virtio 1.2 §5.3.3). */
export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;

/** Control events (struct virtio_console_control.event). */
export const VIRTIO_CONSOLE_DEVICE_READY = 0;
export const VIRTIO_CONSOLE_PORT_ADD = 1;
export const VIRTIO_CONSOLE_PORT_REMOVE = 2;
export const VIRTIO_CONSOLE_PORT_READY = 3;
export const VIRTIO_CONSOLE_CONSOLE_PORT = 4;
export const VIRTIO_CONSOLE_RESIZE = 5;
export const VIRTIO_CONSOLE_PORT_OPEN = 6;
export const VIRTIO_CONSOLE_PORT_NAME = 7;
/** Port id Linux uses in DEVICE_READY. */
export const VIRTIO_CONSOLE_BAD_ID = 0xffffffff;

/** Config space offsets (struct virtio_console_config). */
export const VIRTIO_CONSOLE_CFG_COLS = 0x0;
export const VIRTIO_CONSOLE_CFG_ROWS = 0x2;
export const VIRTIO_CONSOLE_CFG_MAX_NR_PORTS = 0x4;
export const VIRTIO_CONSOLE_CFG_EMERG_WR = 0x8;

/** Queue numbers: port 0 rx/tx, control rx/tx, then ports 1.. rx/tx (virtio 1.2 §5.3.2). */
export const VIRTIO_CONSOLE_CTRL_RX_QUEUE = 2;
export const VIRTIO_CONSOLE_CTRL_TX_QUEUE = 3;

const CTRL_SIZE = 8;
const PORT_QUEUE_SIZE = 128;
const CTRL_QUEUE_SIZE = 32;
/** Largest guest → host buffer delivered whole. */
const TX_MAX = 1 << 20;

/** Properties of virtio-serial-device in info qtree order. */
export const VIRTIO_SERIAL_PROPS: readonly PropDef[] = [
  { name: "max_ports", type: "uint32", default: 31 },
  { name: "emergency-write", type: "bool", default: true },
  ...VIRTIO_COMMON_PROPS,
];

/** Properties of virtconsole / virtserialport. */
export const VIRTIO_SERIAL_PORT_PROPS: readonly PropDef[] = [
  { name: "chardev", type: "chr", help: "ID of a chardev to use as a backend" },
  { name: "nr", type: "uint32", default: 0xffffffff, help: "port number (default: first free)" },
  {
    name: "name",
    type: "str",
    default: "",
    help: "name advertised to the guest (/sys/class/virtio-ports/*/name)",
  },
];

/** Receive queue of port `nr`. */
export function portRxQueue(nr: number): number {
  return nr === 0 ? 0 : (nr + 1) * 2;
}
/** Transmit queue of port `nr`. */
export function portTxQueue(nr: number): number {
  return portRxQueue(nr) + 1;
}

/** Options of virtio-serial-device. */
export interface VirtioSerialOptions extends VirtioCommonOptions {
  id: string;
  /** max_ports (1..31 by default; QEMU allows up to 511). */
  maxPorts?: number;
  emergencyWrite?: boolean;
}

/** Options of a port (-device virtconsole|virtserialport,chardev=…,nr=…,name=…). */
export interface VirtioSerialPortOptions {
  /** true: virtconsole; false: virtserialport. */
  console: boolean;
  chardev: CharBackend;
  /** The chardev id for info qtree. */
  chardevName?: string;
  /** Port number; default: 0 for the first console, else the first free number from 1. */
  nr?: number;
  name?: string;
  /** Device id (-device …,id=). */
  id?: string;
}

/** One port on a virtio-serial bus. */
export class VirtioSerialPort {
  static readonly PROPS: readonly PropDef[] = VIRTIO_SERIAL_PORT_PROPS;
  readonly typeName: string;
  readonly id: string;
  readonly nr: number;
  readonly name: string;
  readonly isConsole: boolean;
  readonly chardev: CharBackend;
  readonly #chardevName: string;
  /** The guest opened the port (PORT_OPEN from the guest). */
  guestConnected = false;
  /** The guest announced the port (PORT_READY). */
  guestReady = false;

  constructor(nr: number, o: VirtioSerialPortOptions) {
    this.typeName = o.console ? "virtconsole" : "virtserialport";
    this.id = o.id ?? "";
    this.nr = nr;
    this.name = o.name ?? "";
    this.isConsole = o.console;
    this.chardev = o.chardev;
    this.#chardevName = o.chardevName ?? "";
  }

  /** Host side open (a connected chardev). */
  get hostConnected(): boolean {
    return this.chardev.connected;
  }

  propertyValues(): Record<string, string | number | boolean> {
    return { chardev: this.#chardevName, nr: this.nr, name: this.name };
  }

  /** The extra qtree line QEMU prints for a port. */
  describe(): string {
    return `port ${this.nr}, guest ${this.guestConnected ? "on" : "off"}, host ${
      this.hostConnected ? "on" : "off"
    }, throttle off`;
  }
}

/** virtio-serial-device: ports, control queues and the console config. */
export class VirtioSerial implements VirtioDevice {
  static readonly TYPE_NAME = "virtio-serial-device";
  static readonly PROPS: readonly PropDef[] = VIRTIO_SERIAL_PROPS;

  readonly id: string;
  readonly typeName: string = VirtioSerial.TYPE_NAME;
  readonly deviceId: number = VIRTIO_ID_CONSOLE;
  readonly queueSizes: readonly number[];
  readonly configSize: number;
  readonly maxPorts: number;

  readonly #common: VirtioCommon;
  readonly #emergencyWrite: boolean;
  readonly #ports = new Map<number, VirtioSerialPort>();
  readonly #config: Uint8Array;
  /** Control messages waiting for a control-rx buffer (QEMU drops them; we hold them). */
  #pendingCtrl: Uint8Array[] = [];
  #deviceReady = false;
  #cols = 0;
  #rows = 0;
  #ctx: VirtioContext | null = null;

  /** @throws UserError for max_ports out of range */
  constructor(o: VirtioSerialOptions) {
    this.id = o.id;
    this.#common = virtioCommon(o);
    this.maxPorts = o.maxPorts ?? 31;
    if (!Number.isInteger(this.maxPorts) || this.maxPorts < 1 || this.maxPorts > 511) {
      throw new UserError("maximum ports supported: 511");
    }
    this.#emergencyWrite = o.emergencyWrite ?? true;
    const sizes: number[] = [PORT_QUEUE_SIZE, PORT_QUEUE_SIZE, CTRL_QUEUE_SIZE, CTRL_QUEUE_SIZE];
    for (let i = 1; i < this.maxPorts; i++) sizes.push(PORT_QUEUE_SIZE, PORT_QUEUE_SIZE);
    this.queueSizes = sizes;
    this.configSize = this.#emergencyWrite ? 12 : 8;
    this.#config = new Uint8Array(this.configSize);
  }

  /** Ports in number order. */
  get ports(): VirtioSerialPort[] {
    return [...this.#ports.values()].sort((a, b) => a.nr - b.nr);
  }

  /**
   * Add a port (-device virtconsole / virtserialport on this bus); a guest already running gets PORT_ADD.
   * @throws UserError on a taken or out-of-range number, or a duplicate name
   */
  addPort(o: VirtioSerialPortOptions): VirtioSerialPort {
    let nr = o.nr;
    if (nr === undefined) {
      // Port 0 is reserved for a console (QEMU keeps it for old guests); others take the first free number.
      if (o.console && !this.#ports.has(0)) nr = 0;
      else {
        nr = 1;
        while (this.#ports.has(nr)) nr++;
        if (nr >= this.maxPorts) throw new UserError("virtio-serial-bus: Out of slots for serial port");
      }
    }
    if (!Number.isInteger(nr) || nr < 0 || nr >= this.maxPorts) {
      throw new UserError(
        `virtio-serial-bus: Out-of-range port id specified, max. allowed: ${this.maxPorts - 1}`,
      );
    }
    if (nr === 0 && !o.console) {
      throw new UserError(
        "Port number 0 on virtio-serial devices reserved for virtconsole devices for backward compatibility",
      );
    }
    if (this.#ports.has(nr)) throw new UserError(`virtio-serial-bus: A port already exists at id ${nr}`);
    if (o.name && [...this.#ports.values()].some((p) => p.name === o.name)) {
      throw new UserError(`virtio-serial-bus: A port already exists by name ${o.name}`);
    }
    const port = new VirtioSerialPort(nr, o);
    this.#ports.set(nr, port);
    port.chardev.setReceiver(this.#receiver(port));
    if (this.#deviceReady) this.#sendControl(nr, VIRTIO_CONSOLE_PORT_ADD, 1);
    return port;
  }

  #receiver(port: VirtioSerialPort): CharReceiver {
    return {
      canReceive: () => this.#canReceive(port),
      receive: (data) => this.#receive(port, data),
    };
  }

  #multiport(): boolean {
    return this.#ctx !== null && this.#ctx.hasFeature(VIRTIO_CONSOLE_F_MULTIPORT);
  }

  /** Room in the port's receive ring (QEMU virtio_serial_guest_ready, per chain). */
  #canReceive(port: VirtioSerialPort): number {
    const ctx = this.#ctx;
    if (ctx === null || !ctx.driverOk) return 0;
    if (!this.#multiport() && port.nr !== 0) return 0;
    if (this.#multiport() && !port.guestConnected) return 0;
    const q = ctx.queues[portRxQueue(port.nr)];
    if (q === undefined || !q.ready) return 0;
    return q.peekInBytes();
  }

  #receive(port: VirtioSerialPort, data: Uint8Array): void {
    const ctx = this.#ctx;
    if (ctx === null) return;
    const q = ctx.queues[portRxQueue(port.nr)];
    if (q === undefined) return;
    let off = 0;
    let pushed = 0;
    while (off < data.length && this.#canReceive(port) > 0) {
      const e = q.pop();
      if (e === null) break;
      const n = e.writeIn(ctx.mem, 0, data.subarray(off));
      off += n;
      q.push(e, n);
      pushed++;
    }
    if (pushed > 0) ctx.notify(q);
  }

  hostFeatures(_modern: boolean): bigint {
    let f = commonFeatures(this.#common);
    if (this.maxPorts > 1) f |= featureBit(VIRTIO_CONSOLE_F_MULTIPORT);
    if (this.#emergencyWrite) f |= featureBit(VIRTIO_CONSOLE_F_EMERG_WRITE);
    return f;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    const dv = new DataView(this.#config.buffer);
    this.#config.fill(0);
    // cols/rows stay 0: VIRTIO_CONSOLE_F_SIZE is not offered (QEMU); sizes travel as RESIZE messages.
    dv.setUint32(VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, this.maxPorts, true);
    return configRead(this.#config, offset, size);
  }

  /** emerg_wr: one character to port 0, once the driver negotiated EMERG_WRITE (QEMU set_config). */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    if (
      !this.#emergencyWrite || offset > VIRTIO_CONSOLE_CFG_EMERG_WR ||
      offset + size <= VIRTIO_CONSOLE_CFG_EMERG_WR
    ) {
      return;
    }
    const ctx = this.#ctx;
    if (ctx === null || !ctx.hasFeature(VIRTIO_CONSOLE_F_EMERG_WRITE)) return;
    const byte = (value >>> (8 * (VIRTIO_CONSOLE_CFG_EMERG_WR - offset))) & 0xff;
    const port = this.#ports.get(0);
    if (port !== undefined && port.hostConnected) port.chardev.write(Uint8Array.of(byte));
  }

  attach(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }

  queueNotify(index: number): void {
    const ctx = this.#ctx;
    if (ctx === null) return;
    if (index === VIRTIO_CONSOLE_CTRL_RX_QUEUE) return this.#flushControl();
    if (index === VIRTIO_CONSOLE_CTRL_TX_QUEUE) return this.#controlOut();
    const nr = index < 2 ? 0 : (index >> 1) - 1;
    const port = this.#ports.get(nr);
    if (index & 1) {
      // Guest → host: deliver (or discard when nobody listens) and complete every buffer.
      const q = ctx.queues[index];
      let done = 0;
      for (let e = q.pop(); e !== null; e = q.pop()) {
        if (port !== undefined && port.hostConnected) {
          // One bounded copy: the chain's length is the guest's to choose (Linux sends at most a page).
          if (e.outBytes > TX_MAX) {
            ctx.log.guestError(this.id, `port ${nr}: ${e.outBytes}-byte buffer cut to ${TX_MAX}`);
          }
          const buf = new Uint8Array(Math.min(TX_MAX, e.outBytes));
          e.readOut(ctx.mem, 0, buf);
          port.chardev.write(buf);
        }
        q.push(e, 0);
        done++;
      }
      if (done > 0) ctx.notify(q);
    } else if (port !== undefined) {
      // New receive buffers: the backend may deliver again (qemu_chr_fe_accept_input).
      port.chardev.accept?.();
    }
  }

  /** Guest control messages (QEMU handle_control_message). */
  #controlOut(): void {
    const ctx = this.#ctx!;
    const q = ctx.queues[VIRTIO_CONSOLE_CTRL_TX_QUEUE];
    let done = 0;
    for (let e = q.pop(); e !== null; e = q.pop()) {
      const buf = new Uint8Array(Math.min(e.outBytes, 4096));
      const n = e.readOut(ctx.mem, 0, buf);
      q.push(e, 0);
      done++;
      if (n < CTRL_SIZE) {
        ctx.log.guestError(this.id, `control message too short (${n} bytes)`);
        continue;
      }
      const dv = new DataView(buf.buffer);
      this.#handleControl(dv.getUint32(0, true), dv.getUint16(4, true), dv.getUint16(6, true));
    }
    if (done > 0) ctx.notify(q);
  }

  #handleControl(id: number, event: number, value: number): void {
    const log = this.#ctx!.log;
    if (event === VIRTIO_CONSOLE_DEVICE_READY) {
      if (!value) return log.guestError(this.id, "guest failure in adding device");
      this.#deviceReady = true;
      for (const p of this.ports) this.#sendControl(p.nr, VIRTIO_CONSOLE_PORT_ADD, 1);
      return;
    }
    const port = this.#ports.get(id);
    if (port === undefined) return log.guestError(this.id, `unexpected port id ${id}`);
    switch (event) {
      case VIRTIO_CONSOLE_PORT_READY:
        if (!value) return log.guestError(this.id, `guest failure in adding port ${id}`);
        port.guestReady = true;
        // Console first, then name, then open: Linux hooks hvc up on CONSOLE_PORT.
        if (port.isConsole) this.#sendControl(id, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
        if (port.name) {
          const name = new TextEncoder().encode(port.name);
          const extra = new Uint8Array(name.length + 1);
          extra.set(name);
          this.#sendControl(id, VIRTIO_CONSOLE_PORT_NAME, 1, extra);
        }
        if (port.hostConnected) this.#sendControl(id, VIRTIO_CONSOLE_PORT_OPEN, 1);
        if (port.isConsole && (this.#cols || this.#rows)) this.#sendResize(port);
        return;
      case VIRTIO_CONSOLE_PORT_OPEN:
        port.guestConnected = value !== 0;
        if (port.guestConnected) port.chardev.accept?.();
        return;
      default:
        log.guestError(this.id, `unknown control event ${event}`);
    }
  }

  #sendResize(port: VirtioSerialPort): void {
    const extra = new Uint8Array(4);
    const dv = new DataView(extra.buffer);
    dv.setUint16(0, this.#rows, true);
    dv.setUint16(2, this.#cols, true);
    this.#sendControl(port.nr, VIRTIO_CONSOLE_RESIZE, 0, extra);
  }

  /** Tell the guest a console port's size changed (e.g. the host terminal was resized). */
  resize(cols: number, rows: number): void {
    this.#cols = cols & 0xffff;
    this.#rows = rows & 0xffff;
    for (const p of this.#ports.values()) if (p.isConsole && p.guestReady) this.#sendResize(p);
  }

  #sendControl(id: number, event: number, value: number, extra?: Uint8Array): void {
    const msg = new Uint8Array(CTRL_SIZE + (extra?.length ?? 0));
    const dv = new DataView(msg.buffer);
    dv.setUint32(0, id, true);
    dv.setUint16(4, event, true);
    dv.setUint16(6, value, true);
    if (extra) msg.set(extra, CTRL_SIZE);
    this.#pendingCtrl.push(msg);
    this.#flushControl();
  }

  #flushControl(): void {
    const ctx = this.#ctx;
    if (ctx === null || this.#pendingCtrl.length === 0) return;
    const q = ctx.queues[VIRTIO_CONSOLE_CTRL_RX_QUEUE];
    if (!q.ready) return;
    let done = 0;
    while (this.#pendingCtrl.length > 0) {
      const e = q.pop();
      if (e === null) break;
      const msg = this.#pendingCtrl.shift()!;
      const n = e.writeIn(ctx.mem, 0, msg);
      q.push(e, n);
      done++;
    }
    if (done > 0) ctx.notify(q);
  }

  reset(): void {
    this.#pendingCtrl = [];
    this.#deviceReady = false;
    for (const p of this.#ports.values()) {
      p.guestConnected = false;
      p.guestReady = false;
    }
  }

  saveState(): DeviceState {
    return {
      version: 1,
      deviceReady: this.#deviceReady,
      cols: this.#cols,
      rows: this.#rows,
      pendingCtrl: this.#pendingCtrl.map((m) => m.slice()),
      ports: this.ports.map((p) => ({
        nr: p.nr,
        guestConnected: p.guestConnected,
        guestReady: p.guestReady,
      })),
    };
  }

  loadState(s: DeviceState): void {
    const ports = s.ports as { nr: number; guestConnected: boolean; guestReady: boolean }[];
    if (
      s.version !== 1 || typeof s.deviceReady !== "boolean" || !Array.isArray(ports) ||
      !Array.isArray(s.pendingCtrl) || !(s.pendingCtrl as unknown[]).every((m) => m instanceof Uint8Array) ||
      !Number.isInteger(s.cols) || !Number.isInteger(s.rows)
    ) throw new StateError(`${this.id}: bad virtio-serial state`);
    for (const p of ports) {
      if (!this.#ports.has(p.nr)) throw new StateError(`${this.id}: no port ${p.nr} on this bus`);
    }
    this.#deviceReady = s.deviceReady;
    this.#cols = (s.cols as number) & 0xffff;
    this.#rows = (s.rows as number) & 0xffff;
    this.#pendingCtrl = (s.pendingCtrl as Uint8Array[]).map((m) => m.slice());
    for (const p of ports) {
      const port = this.#ports.get(p.nr)!;
      port.guestConnected = !!p.guestConnected;
      port.guestReady = !!p.guestReady;
    }
  }

  propertyValues(): Record<string, string | number | boolean> {
    return {
      max_ports: this.maxPorts,
      "emergency-write": this.#emergencyWrite,
      ...commonPropertyValues(this.hostFeatures(!(this.#ctx?.legacy ?? true))),
    };
  }
}
