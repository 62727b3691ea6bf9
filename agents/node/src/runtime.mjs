// What a running worker knows about itself, and its line to the supervising agent (docs/RELEASES.md,
// "The Node agent"): the version comes from the `worker-manifest.json` of the release it was unpacked
// from, never from a constant, so a heartbeat proves which code runs. The agent starts the child with
// a pipe on fd 3 (`LEADOPS_AGENT_FD=3`) and reads JSON lines from it:
// `{"event": "heartbeat", "version", "update_target"}` and `{"event": "stopped"}`.
import { readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const MANIFEST_NAME = "worker-manifest.json";
export const AGENT_FD_ENV = "LEADOPS_AGENT_FD";
export const AGENT_SELF_TEST_ENV = "LEADOPS_AGENT_SELF_TEST";
export const AGENT_RUNNING_VERSION_ENV = "LEADOPS_AGENT_RUNNING_VERSION";
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The `worker-manifest.json` of the release this code runs from; null in a checkout. */
export function ownManifest(root = PACKAGE_ROOT) {
  try {
    const manifest = JSON.parse(readFileSync(path.join(root, MANIFEST_NAME), "utf8"));
    return manifest && typeof manifest.version === "string" ? manifest : null;
  } catch {
    return null;
  }
}

export function ownVersion(fallback = "dev") {
  return ownManifest()?.version ?? fallback;
}

/** The self-test the agent ran on this version (carried by every heartbeat), or null. */
export function agentSelfTest() {
  try {
    const value = JSON.parse(process.env[AGENT_SELF_TEST_ENV] || "null");
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

/** The child's end of the pipe to its agent; `onLost` runs once when the agent is gone. */
export class AgentLink {
  constructor(fd, { onLost } = {}) {
    this.fd = fd;
    this.onLost = onLost;
    this.lost = false;
  }

  static fromEnvironment(options) {
    const raw = process.env[AGENT_FD_ENV];
    return raw && /^\d+$/.test(raw) ? new AgentLink(Number(raw), options) : null;
  }

  send(event, fields = {}) {
    if (this.lost) return;
    try {
      writeSync(this.fd, JSON.stringify({ event, ...fields }) + "\n");
    } catch {
      // The agent died: a worker nobody supervises must not run on beside the next agent.
      this.lost = true;
      this.onLost?.();
    }
  }
}

/** {worker_id, key_id, secret} from a JSON file (mode 0600). */
export function credentialsRead(file) {
  const stored = JSON.parse(readFileSync(file, "utf8"));
  if (!stored?.worker_id || !stored?.key_id || !stored?.secret) throw new Error(`${file} lacks worker_id, key_id or secret`);
  return { workerId: String(stored.worker_id), keyId: String(stored.key_id), secret: String(stored.secret) };
}

/** Store a pushed key: write a temporary file, then rename (never half a file). */
export function credentialsWrite(file, { workerId, keyId, secret }) {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify({ worker_id: workerId, key_id: keyId, secret }), { mode: 0o600 });
  renameSync(temp, file);
}
