/**
 * The contract between the user-space virtio-vsock device (devices/virtio/vsock.ts) and its host side
 * (core/host/vsock_uds.ts: Firecracker's Unix-socket scheme). Connections are numbered by the backend; all
 * calls are synchronous and the backend reports host events through the receiver.
 * @module
 */

/** What the device gives the backend to report host events. */
export interface VsockReceiver {
  /** A host process connected and asked for guest `port` (Firecracker: `CONNECT <port>\n`). */
  incoming(conn: number, port: number): void;
  /** A connection the guest asked for (connect) is open on the host. */
  connected(conn: number): void;
  /** A connection the guest asked for could not be made (no listener at `<uds-path>_<port>`). */
  refused(conn: number): void;
  /** Bytes from the host peer. */
  data(conn: number, bytes: Uint8Array): void;
  /** The host peer will send no more (EOF) or vanished (`error`). */
  closed(conn: number, error: boolean): void;
  /** `n` bytes the device handed to `send` reached the host socket (advances fwd_cnt). */
  written(conn: number, n: number): void;
  /** May the backend read more host bytes for `conn` now? (false: wait for `resume`). */
  wantMore(conn: number): boolean;
}

/** Host side of a user-space vsock device. */
export interface VsockBackend {
  setReceiver(r: VsockReceiver | null): void;
  /** Guest connects to host port `port`: returns a connection number; the answer arrives later. */
  connect(port: number): number;
  /** Host-initiated connection accepted by the guest: the backend answers `OK <hostPort>\n`. */
  accepted(conn: number, hostPort: number): void;
  /** Guest → host bytes (queued; `written` reports progress). */
  send(conn: number, bytes: Uint8Array): void;
  /** The guest will send no more: half-close the host socket. */
  shutdownWrite(conn: number): void;
  /** Forget a connection and close its socket. */
  close(conn: number): void;
  /** The device has room again for host bytes of `conn`. */
  resume(conn: number): void;
  /** Stop listening and close everything. */
  shutdown(): void;
}
