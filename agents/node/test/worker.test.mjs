// The worker loop against a local exchange: a lease renewed at half its length, a block reported with
// its screenshot as evidence and a masked log tail, a graceful stop that releases unfinished leases.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LeadOpsClient } from "../src/client.mjs";
import { BlockedError } from "../src/errors.mjs";
import { mask } from "../src/logtail.mjs";
import { Worker } from "../src/worker.mjs";
import { json, serve } from "../test-support/helpers.mjs";

const PNG = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");

function portal(jobs) {
  const queue = [...jobs];
  return serve((req, body, res) => {
    const payload = req.headers["content-type"] === "application/json" ? JSON.parse(body) : {};
    if (req.url.endsWith("/config")) return json(res, 200, { poll_interval_s: 0.05, heartbeat_interval_s: 0.2, max_batch: 10 });
    if (req.url.endsWith("/heartbeat")) return json(res, 200, { server_time: new Date().toISOString(), update_target: null });
    if (req.url.endsWith("/jobs/exchange")) {
      const results = (payload.reports ?? []).map((r) => ({ job_id: r.job_id, status: 200, body: { job_state: "succeeded" } }));
      return json(res, 200, { results, jobs: queue.splice(0, payload.pull?.max ?? 0), retry_after_s: 0.05 });
    }
    if (/\/jobs\/\d+\/extend$/.test(req.url)) {
      return json(res, 200, { lease_expires_at: new Date(Date.now() + 2000).toISOString() });
    }
    if (req.url.endsWith("/jobs/release")) return json(res, 200, { released: payload.attempt_ids.length });
    return json(res, 200, { evidence_id: 1 });
  });
}

const job = (id, leaseMs = 2000) => ({ id, attempt_id: `att-${id}`, attempt: 1, provider: "maps", payload: { q: id },
                                       lease_expires_at: new Date(Date.now() + leaseMs).toISOString() });
const creds = { workerId: "w", keyId: "k", secret: "s" };

test("a block uploads its screenshot as evidence and reports failed with a masked log tail; a success reports its leads", async () => {
  const server = await portal([job(1), job(2)]);
  try {
    const provider = {
      async scrape(j, { log }) {
        log("calling 0501234567 for someone@example.com");
        if (j.id === 1) throw Object.assign(new BlockedError("captcha on the listing page", { code: "captcha_required" }), { screenshot: PNG });
        return [{ name: "Cafe", phone: "0501234567" }];
      },
    };
    const worker = new Worker(new LeadOpsClient(server.url, creds), provider, { concurrency: 2, version: "9.9.9" });
    const done = worker.run();
    while (worker.counters.jobs_done + worker.counters.jobs_failed < 2) await new Promise((r) => setTimeout(r, 20));
    worker.stop();
    await done;
    const evidence = server.requests.find((r) => r.url === "/api/v1/jobs/1/evidence");
    assert.equal(evidence.headers["x-leadops-attempt-id"], "att-1");
    assert.deepEqual(evidence.body, PNG);
    assert.equal(worker.counters.evidence_sent, 1);
    assert.equal(worker.client.stats.failed_requests, 0);
    const items = server.requests.filter((r) => r.url.endsWith("/exchange")).flatMap((r) => JSON.parse(r.body).reports);
    const failed = items.find((i) => i.job_id === 1);
    assert.equal(failed.outcome, "failed");
    assert.deepEqual(failed.error, { code: "captcha_required", message: "captcha on the listing page", retryable: false });
    assert.ok(failed.log_tail.includes("captcha") && !failed.log_tail.includes("0501234567") && !failed.log_tail.includes("someone@"));
    const succeeded = items.find((i) => i.job_id === 2);
    assert.equal(succeeded.outcome, "succeeded");
    assert.deepEqual(succeeded.leads, [{ name: "Cafe", phone: "0501234567" }]);
    assert.equal(new Set(items.map((i) => i.idempotency_key)).size, items.length);
  } finally {
    await server.close();
  }
});

test("a lease is extended at half its length, and stop() releases what is unfinished", async () => {
  const server = await portal([job(5, 2000)]);
  try {
    const provider = { scrape: (j, { signal }) => new Promise((resolve) => signal.addEventListener("abort", () => resolve([]))) };
    const worker = new Worker(new LeadOpsClient(server.url, creds), provider, { stopGraceMs: 100 });
    const done = worker.run();
    const started = Date.now();
    while (!server.requests.some((r) => r.url.endsWith("/extend"))) await new Promise((r) => setTimeout(r, 20));
    const after = Date.now() - started;
    assert.ok(after >= 800 && after < 1800, `extended after ${after} ms`);
    worker.stop();
    await done;
    const release = server.requests.find((r) => r.url.endsWith("/jobs/release"));
    assert.deepEqual(JSON.parse(release.body), { attempt_ids: ["att-5"] });
    const reported = server.requests.filter((r) => r.url.endsWith("/exchange")).flatMap((r) => JSON.parse(r.body).reports);
    assert.ok(!reported.some((i) => i.job_id === 5), "a released job is not reported");
    assert.equal(worker.counters.jobs_released, 1);
  } finally {
    await server.close();
  }
});

test("masking hides phones (any digits), e-mail addresses and secrets", () => {
  assert.match(mask("call +966 50 123 4567 now"), /^call \*+67 now$/);
  assert.ok(!mask("٠٥٠١٢٣٤٥٦٧").includes("٤٥٦"));
  assert.equal(mask("token=abc123 a@b.co"), "token=[secret] [email]");
});

test("an exchange refused as too large is halved until it passes; a single item refused is dropped", async () => {
  const sizes = [];
  const server = await serve((req, body, res) => {
    const payload = body.length ? JSON.parse(body) : {};
    if (req.url.endsWith("/config")) return json(res, 200, { poll_interval_s: 0.01, heartbeat_interval_s: 5 });
    if (req.url.endsWith("/heartbeat")) return json(res, 200, { update_target: null });
    const reports = payload.reports ?? [];
    sizes.push(reports.length);
    if (reports.length > 2 || reports.some((r) => r.job_id === 99)) {
      return json(res, 422, { error: { code: "validation_error", message: "too many leads" } });
    }
    return json(res, 200, { results: reports.map((r) => ({ job_id: r.job_id, status: 200, body: {} })), jobs: [], retry_after_s: 0.01 });
  });
  try {
    const worker = new Worker(new LeadOpsClient(server.url, creds), { scrape: async () => [] }, { concurrency: 0 });
    worker.outbox.push(...[1, 2, 3, 4, 99].map((id) => ({ job_id: id, idempotency_key: `k-${id}`, attempt_id: `a-${id}`,
                                                        outcome: "succeeded", leads: [] })));
    const done = worker.run();
    while (worker.outbox.length) await new Promise((r) => setTimeout(r, 10));
    worker.stop();
    await done;
    assert.equal(sizes[0], 5);
    assert.equal(worker.counters.jobs_done, 4);
    assert.equal(worker.counters.jobs_dropped, 1);
  } finally {
    await server.close();
  }
});

test("a plug-in's browser page gets the system Chromium path, is screenshotted on a block and closed", async () => {
  const server = await portal([job(3)]);
  try {
    const seen = { closed: 0 };
    const provider = {
      async newPage({ executablePath }) {
        seen.executablePath = executablePath;
        return { page: { screenshot: async ({ type }) => { seen.type = type; return PNG; } }, close: async () => { seen.closed += 1; } };
      },
      async scrape(j, { page }) {
        seen.page = Boolean(page);
        throw new BlockedError("403 from the source");
      },
    };
    const worker = new Worker(new LeadOpsClient(server.url, creds), provider, { executablePath: "/usr/bin/chromium" });
    const done = worker.run();
    while (worker.counters.jobs_failed < 1) await new Promise((r) => setTimeout(r, 20));
    worker.stop();
    await done;
    assert.deepEqual(seen, { executablePath: "/usr/bin/chromium", page: true, type: "png", closed: 1 });
    const evidence = server.requests.find((r) => r.url === "/api/v1/jobs/3/evidence");
    assert.deepEqual(evidence.body, PNG);
    assert.equal(worker.counters.evidence_sent, 1);
  } finally {
    await server.close();
  }
});
