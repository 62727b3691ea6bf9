#!/usr/bin/env node
// Interop check of the worker request signing (DESIGN.md section 4) from Node 20, the runtime of
// the real fleet: only node:crypto and the global fetch, no npm packages.
//
//   LEADOPS_URL=http://127.0.0.1:8000 WORKER_ID=w-1 KEY_ID=... SECRET=... node tests/e2e/node_sign.mjs
//
// Sends a signed POST /api/v1/heartbeat and a signed GET /api/v1/config?x=1&y=2 (the query signed as
// sent), then protocol v1.1: a POST /api/v1/jobs/exchange that pulls one job, a second exchange
// that reports it (with Arabic text in the body, so the body hash covers UTF-8) beside an item that
// fails alone, and pulls nothing, and the same exchange sent again (a replay: the first answers).
// Prints one JSON line with every status and body. Exit code 0 only if all are 200.
import { createHash, createHmac, randomBytes } from "node:crypto";

const SCHEME = "LEADOPS-HMAC-SHA256";

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(JSON.stringify({ ok: false, error: `missing environment variable ${name}` }));
    process.exit(2);
  }
  return value;
}

const baseUrl = requireEnv("LEADOPS_URL").replace(/\/+$/, "");
const workerId = requireEnv("WORKER_ID");
const keyId = requireEnv("KEY_ID");
const secret = requireEnv("SECRET");

function signedHeaders(method, path, query, body) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = randomBytes(16).toString("base64url"); // base64url without padding
  const contentSha256 = createHash("sha256").update(body).digest("hex");
  const canonical = [SCHEME, method.toUpperCase(), path, query, workerId, keyId, timestamp, nonce,
    contentSha256].join("\n");
  const signature = createHmac("sha256", Buffer.from(secret, "utf8")).update(canonical, "utf8").digest("hex");
  return {
    "X-LeadOps-Worker": workerId,
    "X-LeadOps-Key-Id": keyId,
    "X-LeadOps-Timestamp": timestamp,
    "X-LeadOps-Nonce": nonce,
    "X-LeadOps-Content-SHA256": contentSha256,
    Authorization: `${SCHEME} Signature=${signature}`,
  };
}

async function call(method, pathAndQuery, bodyText) {
  // The path and the query are signed exactly as they go on the wire, so split the string we send.
  const url = new URL(baseUrl + pathAndQuery);
  const path = url.pathname;
  const query = url.search.startsWith("?") ? url.search.slice(1) : "";
  const body = Buffer.from(bodyText ?? "", "utf8");
  const headers = signedHeaders(method, path, query, body);
  if (body.length) headers["Content-Type"] = "application/json";
  try {
    const response = await fetch(url, { method, headers, body: body.length ? body : undefined });
    const text = await response.text();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text.slice(0, 500);
    }
    return { status: response.status, body: parsed };
  } catch (error) {
    return { status: 0, body: { error: String(error?.cause?.message ?? error) } };
  }
}

const heartbeat = await call("POST", "/api/v1/heartbeat",
  JSON.stringify({ version: "node-interop", status: "idle", running_jobs: 0 }));
const config = await call("GET", "/api/v1/config?x=1&y=2");
const pulled = await call("POST", "/api/v1/jobs/exchange", JSON.stringify({ pull: { max: 1 } }));
let reported = { status: 0, body: null };
let replayed = { status: 0, body: null };
const job = pulled.body?.jobs?.[0];
if (job) {
  // Two items of one exchange: the job's report, and the same phone again under another job id
  // (not this worker's: a 404 for that item alone). Then the very same bytes again: a replay, which
  // answers the first answer and changes nothing.
  const exchangeBody = JSON.stringify({
    reports: [{
      job_id: job.id, idempotency_key: randomBytes(16).toString("hex"), attempt_id: job.attempt_id,
      outcome: "succeeded", leads: [{ name: "مقهى الورد", phone: "0501234567" },
        { name: "مقهى الورد", phone: "+966 50 123 4567" }],
    }, {
      job_id: job.id + 1000000, idempotency_key: randomBytes(16).toString("hex"), attempt_id: job.attempt_id,
      outcome: "succeeded", leads: [{ name: "Other", phone: "0501234567" }],
    }],
    pull: { max: 0 },
  });
  reported = await call("POST", "/api/v1/jobs/exchange", exchangeBody);
  replayed = await call("POST", "/api/v1/jobs/exchange", exchangeBody);
}
const ok = heartbeat.status === 200 && config.status === 200 && pulled.status === 200
  && reported.status === 200 && reported.body?.results?.[0]?.status === 200 && replayed.status === 200;
console.log(JSON.stringify({ ok, heartbeat, config, pulled, reported, replayed }));
process.exit(ok ? 0 : 1);
