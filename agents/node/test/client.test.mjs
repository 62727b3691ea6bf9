// The client against a local server: signed calls, the error shape, Retry-After, 503 with backoff,
// a pending key pushed by a heartbeat adopted (stored first), the evidence attempt header.
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { test } from "node:test";

import { LeadOpsClient } from "../src/client.mjs";
import { ProtocolError } from "../src/errors.mjs";
import { json, serve } from "../test-support/helpers.mjs";

const CREDS = { workerId: "w-1", keyId: "k-old", secret: "old-secret" };
const SECRETS = { "k-old": "old-secret", "k-new": "new-secret" };

/** What the portal checks: body hash and signature over the nine lines. */
function signatureOk(req, body) {
  const url = new URL(req.url, "http://x");
  const h = req.headers;
  const hash = createHash("sha256").update(body).digest("hex");
  const lines = ["LEADOPS-HMAC-SHA256", req.method, url.pathname, url.search.slice(1), h["x-leadops-worker"],
    h["x-leadops-key-id"], h["x-leadops-timestamp"], h["x-leadops-nonce"], hash];
  const expected = createHmac("sha256", SECRETS[h["x-leadops-key-id"]] ?? "").update(lines.join("\n")).digest("hex");
  return hash === h["x-leadops-content-sha256"] && h.authorization === `LEADOPS-HMAC-SHA256 Signature=${expected}`;
}

test("503 and 429 are retried with backoff (Retry-After obeyed), each try signed afresh", async () => {
  let calls = 0;
  const server = await serve((req, body, res) => {
    calls += 1;
    if (!signatureOk(req, body)) return json(res, 401, { error: { code: "unauthorized", message: "no" } });
    if (calls === 1) return json(res, 503, { error: { code: "unavailable", message: "later" } });
    if (calls === 2) return json(res, 429, { error: { code: "rate_limited", message: "slow" } }, { "Retry-After": "1" });
    return json(res, 200, { jobs: [], retry_after_s: 1 });
  });
  const slept = [];
  try {
    const client = new LeadOpsClient(server.url, CREDS, { sleep: async (ms) => slept.push(ms) });
    assert.deepEqual(await client.pull(3), { jobs: [], retry_after_s: 1 });
    assert.equal(slept.length, 2);
    assert.ok(slept[0] >= 250 && slept[0] <= 500, slept);
    assert.equal(slept[1], 1000);
    const nonces = new Set(server.requests.map((r) => r.headers["x-leadops-nonce"]));
    assert.equal(nonces.size, 3);
    assert.deepEqual(client.stats, { requests: 3, failed_requests: 2, retries: 2 });
  } finally {
    await server.close();
  }
});

test("an error answer becomes a ProtocolError with the protocol's code, message and fields; 4xx is not retried", async () => {
  const server = await serve((req, body, res) => json(res, 422, { error: { code: "validation_error", message: "bad", fields: { max: ["too big"] } } }));
  try {
    const client = new LeadOpsClient(server.url, CREDS, { sleep: async () => {} });
    await assert.rejects(client.pull(99), (error) => error instanceof ProtocolError && error.status === 422
      && error.code === "validation_error" && error.fields.max[0] === "too big");
    assert.equal(server.requests.length, 1);
  } finally {
    await server.close();
  }
});

test("a heartbeat's pending key is stored, then used; the secret is not in the answer handed back", async () => {
  const server = await serve((req, body, res) => {
    if (!signatureOk(req, body)) return json(res, 401, { error: { code: "unauthorized", message: "no" } });
    if (req.url.endsWith("/heartbeat")) {
      return json(res, 200, { server_time: new Date().toISOString(), poll_interval_s: 1, config_version: 1,
        update_target: { version: "1.0.0", sequence: 3 }, credentials: { pending: { key_id: "k-new", secret: "new-secret" } } });
    }
    return json(res, 200, { ok: req.headers["x-leadops-key-id"] });
  });
  try {
    const stored = [];
    const client = new LeadOpsClient(server.url, CREDS, { onCredentials: (keyId, secret) => stored.push([keyId, secret]) });
    const answer = await client.heartbeat({ version: "1.0.0", status: "idle" });
    assert.deepEqual(answer.credentials, { pending: { key_id: "k-new" } });
    assert.deepEqual(answer.update_target, { version: "1.0.0", sequence: 3 });
    assert.deepEqual(stored, [["k-new", "new-secret"]]);
    assert.deepEqual(await client.config(), { ok: "k-new" });
    assert.ok(!JSON.stringify(client).includes("secret\":"));
    assert.equal(client.stats.failed_requests, 0);
  } finally {
    await server.close();
  }
});

test("a key that cannot be stored is not used", async () => {
  const server = await serve((req, body, res) => json(res, 200, { credentials: { pending: { key_id: "k-new", secret: "new-secret" } } }));
  try {
    const client = new LeadOpsClient(server.url, CREDS, { onCredentials: () => { throw new Error("disk full"); } });
    await client.heartbeat({ version: "1", status: "idle" });
    assert.equal(client.keyId, "k-old");
  } finally {
    await server.close();
  }
});

test("evidence is the raw image, signed, with the attempt header and its content type", async () => {
  const server = await serve((req, body, res) => (signatureOk(req, body) ? json(res, 200, { evidence_id: 7 }) : json(res, 401, {})));
  try {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    const client = new LeadOpsClient(server.url, CREDS);
    assert.deepEqual(await client.evidence(12, "a-9", png), { evidence_id: 7 });
    const [request] = server.requests;
    assert.equal(request.url, "/api/v1/jobs/12/evidence");
    assert.equal(request.headers["x-leadops-attempt-id"], "a-9");
    assert.equal(request.headers["content-type"], "image/png");
    assert.deepEqual(request.body, png);
  } finally {
    await server.close();
  }
});
