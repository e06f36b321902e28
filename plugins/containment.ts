/**
 * Plugin containment: whatever a plugin throws or rejects with, asynchronously (timers, promises) or as a
 * hostile value (a Proxy, an object whose toString throws), becomes one report line and the plugin is
 * disabled; the VM goes on. Errors are attributed to a plugin by its module URL in the stack, or (for
 * values without a stack) to the plugin whose code is the only user code loaded last.
 * @module
 */

/** A message for any thrown value that never throws itself. */
export function safeMessage(e: unknown): string {
  try {
    if (e instanceof Error) {
      const m = e.message;
      return typeof m === "string" ? m : String(m);
    }
  } catch {
    // a Proxy or a hostile getter: fall through
  }
  try {
    return String(e);
  } catch {
    return "(a value that cannot be printed)";
  }
}

function safeStack(e: unknown): string {
  try {
    if (e instanceof Error && typeof e.stack === "string") return e.stack;
  } catch {
    // hostile value
  }
  return "";
}

/** What the global handlers need from the plugin manager. */
export interface ContainmentTarget {
  /** The plugin whose module is at one of these URLs in `stack`, or, with no stack, a best guess; or null. */
  culprit(stack: string): string | null;
  /** Report and disable (once). */
  disable(name: string, what: string): void;
}

const targets = new Set<ContainmentTarget>();
let installed = false;

function handle(err: unknown, what: string): boolean {
  const stack = safeStack(err);
  for (const t of targets) {
    const name = t.culprit(stack);
    if (name !== null) {
      t.disable(name, `${what}: ${safeMessage(err)}`);
      return true;
    }
  }
  return false;
}

/** Route uncaught errors and unhandled rejections of plugin code to `t` (until the returned function runs). */
export function containPlugins(t: ContainmentTarget): () => void {
  targets.add(t);
  if (!installed) {
    installed = true;
    globalThis.addEventListener("error", (ev) => {
      if (handle((ev as ErrorEvent).error, "uncaught error")) ev.preventDefault();
    });
    globalThis.addEventListener("unhandledrejection", (ev) => {
      if (handle((ev as PromiseRejectionEvent).reason, "unhandled promise rejection")) ev.preventDefault();
    });
  }
  return () => void targets.delete(t);
}

/** Resolve `p`, or reject with `onTimeout()` after `ms` (the pending promise is left to itself). */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(onTimeout()), ms);
    p.then((v) => {
      clearTimeout(t);
      resolve(v);
    }, (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}
