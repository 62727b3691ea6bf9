#!/usr/bin/env node
// The package's own client and verifier (agents/node/src/) against a live portal, for
// tests/e2e/test_node_agents.py: the channel manifest from GET /releases/{channel}/latest.json and
// from /updates/check verified with the trusted key, a download resumed with Range, an update report.
//
//   LEADOPS_URL=... WORKER_ID=... KEY_ID=... SECRET=... TRUST=KEYID:BASE64 node node_package_calls.mjs
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { LeadOpsClient, ManifestVerifier, manifestEntryFor, trustedKeysFrom } from "../../agents/node/src/index.mjs";

const env = process.env;
const [keyId, publicB64] = [env.TRUST.slice(0, env.TRUST.indexOf(":")), env.TRUST.slice(env.TRUST.indexOf(":") + 1)];
const client = new LeadOpsClient(env.LEADOPS_URL, { workerId: env.WORKER_ID, keyId: env.KEY_ID, secret: env.SECRET });
const verifier = new ManifestVerifier(trustedKeysFrom({ [keyId]: publicB64 }));
const config = await client.config();
const latest = verifier.verify(await client.manifest(config.channel), { channel: config.channel });
const check = await client.updateCheck("0.0.0-none");
const entry = manifestEntryFor(verifier.verify(check.manifest, { channel: config.channel }), check.target);
// An unsigned download is refused; a signed one is whole; then the first 100 bytes are kept and the
// rest asked for with Range (what the agent does after a dropped connection).
const unsigned = await fetch(new URL(entry.url, env.LEADOPS_URL)).catch(() => null);
const file = path.join(mkdtempSync(path.join(tmpdir(), "dl-")), "artifact");
let fd = openSync(file, "w");
await client.download(entry.url, fd, { offset: 0 });
closeSync(fd);
const whole = readFileSync(file);
fd = openSync(file, "w");
writeSync(fd, whole.subarray(0, 100));
const written = await client.download(entry.url, fd, { offset: 100 });
closeSync(fd);
const sha256 = createHash("sha256").update(readFileSync(file)).digest("hex");
await client.updateReport(entry.version, "downloaded", true, { sha256, via: "node-package" });
console.log(JSON.stringify({
  channel: config.channel, latest: latest.release?.version, sequence: latest.sequence, target: entry.version,
  unsigned_status: unsigned?.status ?? 0, resumed_bytes: written, size: entry.size, sha_ok: sha256 === entry.sha256,
  failed_requests: client.stats.failed_requests,
}));
