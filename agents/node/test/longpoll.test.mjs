// An idle worker long-polls (docs/API.md, "Long poll") and skips heartbeats that an answer stood in for
// (docs/API.md, "Liveness"): a local portal that holds pulls like the real one.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LeadOpsClient } from "../src/client.mjs";
import { Worker } from "../src/worker.mjs";
import { json, serve } from "../test-support/helpers.mjs";

const creds = { workerId: "w", keyId: "k", secret: "s" };
const job = (id) => ({ id, attempt_id: `att-${id}`, attempt: 1, provider: "maps", payload: { q: id },
                       lease_expires_at: new Date(Date.now() + 60_000).toISOString() });
const until = async (check, ms = 5000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** A portal with long polls: a pull with wait_s is held until `offer(job)` or the wait ends. */
async function portal({ standIn = true, heartbeatIntervalS = 0.15, waitS = 1, pushKey = null } = {}) {
  const ready = [];
  const held = [];
  const standInFields = () => (standIn ? { config_version: 1, update_target: null,
                                           ...(pushKey ? { credentials: { pending: pushKey } } : {}) } : {});
  const server = await serve(async (req, body, res) => {
    const payload = body.length ? JSON.parse(body) : {};
    if (req.url.endsWith("/config")) {
      return json(res, 200, { poll_interval_s: 0.05, heartbeat_interval_s: heartbeatIntervalS, max_batch: 10,
                              long_poll_wait_s: waitS });
    }
    if (req.url.endsWith("/heartbeat")) {
      return json(res, 200, { server_time: new Date().toISOString(), poll_interval_s: 0.05, config_version: 1,
                              update_target: null });
    }
    if (req.url.endsWith("/jobs/exchange")) {
      const results = (payload.reports ?? []).map((r) => ({ job_id: r.job_id, status: 200, body: { job_state: "succeeded" } }));
      return json(res, 200, { results, jobs: ready.splice(0, payload.pull?.max ?? 0), retry_after_s: 0, ...standInFields() });
    }
    if (req.url.endsWith("/jobs/pull")) {
      if (ready.length || !payload.wait_s) {
        return json(res, 200, { jobs: ready.splice(0, payload.max), retry_after_s: 0, ...standInFields() });
      }
      await new Promise((resolve) => {
        const waiter = { resolve, max: payload.max };
        held.push(waiter);
        const timer = setTimeout(() => { held.splice(held.indexOf(waiter), 1); resolve(); }, payload.wait_s * 1000);
        res.on("close", () => {
          clearTimeout(timer); // a hung-up poll's timer must not keep the test process alive
          if (held.includes(waiter)) held.splice(held.indexOf(waiter), 1);
          resolve();
        });
      });
      if (res.destroyed) return undefined; // the client hung up: never handed a job
      return json(res, 200, { jobs: ready.splice(0, payload.max), retry_after_s: 0, ...standInFields() });
    }
    if (req.url.endsWith("/jobs/release")) return json(res, 200, { released: (payload.attempt_ids ?? []).length });
    return json(res, 200, {});
  });
  server.offer = (j) => {
    ready.push(j);
    held.shift()?.resolve();
  };
  server.held = held;
  server.calls = (suffix) => server.requests.filter((r) => r.url.endsWith(suffix));
  return server;
}

test("an idle worker long-polls instead of polling, and takes a job offered during the wait", async () => {
  const server = await portal({ waitS: 5 });
  const scraped = [];
  const worker = new Worker(new LeadOpsClient(server.url, creds), { async scrape(j) { scraped.push(j.id); return []; } },
                            { concurrency: 1 });
  const done = worker.run();
  try {
    await until(() => server.held.length === 1);
    await new Promise((r) => setTimeout(r, 300)); // held: no polling while it waits
    const polls = server.calls("/jobs/pull").map((r) => JSON.parse(r.body));
    assert.equal(polls.length, 1);
    assert.equal(polls[0].wait_s, 5);
    assert.equal(server.calls("/jobs/exchange").length, 1); // the one empty exchange that went idle

    const offered = Date.now();
    server.offer(job(7));
    await until(() => scraped.includes(7));
    assert.ok(Date.now() - offered < 1000);
    await until(() => worker.counters.jobs_done === 1);
  } finally {
    worker.stop();
    await done;
    await server.close();
  }
});

test("stop() abandons a long poll at once", async () => {
  const server = await portal({ waitS: 30 });
  const worker = new Worker(new LeadOpsClient(server.url, creds), { async scrape() { return []; } }, { concurrency: 1 });
  const done = worker.run();
  try {
    await until(() => server.held.length === 1);
    const stopped = Date.now();
    worker.stop();
    await done;
    assert.ok(Date.now() - stopped < 2000, `stop took ${Date.now() - stopped} ms`);
    assert.equal(worker.client.stats.retries, 0); // an abandoned poll is not retried
  } finally {
    await server.close();
  }
});

test("after stop() abandons a long poll, every lease of the worker is given back", async () => {
  // The portal's answer to the poll may have been on its way when the connection closed: those jobs
  // are leased to this worker, and only a release without attempt ids reaches them.
  const server = await portal({ waitS: 30 });
  const worker = new Worker(new LeadOpsClient(server.url, creds), { async scrape() { return []; } }, { concurrency: 1 });
  const done = worker.run();
  try {
    await until(() => server.held.length === 1);
    worker.stop();
    await done;
    const releases = server.calls("/jobs/release").map((r) => JSON.parse(r.body));
    assert.deepEqual(releases, [{}]);
  } finally {
    await server.close();
  }
});

test("a worker that stops without a long poll out releases only the attempts it holds", async () => {
  const server = await portal({ waitS: 0 });
  const worker = new Worker(new LeadOpsClient(server.url, creds), { async scrape() { return []; } }, { concurrency: 1 });
  const done = worker.run();
  try {
    await until(() => server.calls("/jobs/exchange").length >= 2);
    worker.stop();
    await done;
    assert.deepEqual(server.calls("/jobs/release"), []);
  } finally {
    await server.close();
  }
});

test("answers that stand in for a heartbeat make heartbeats needless; without them heartbeats go on", async () => {
  for (const standIn of [true, false]) {
    const server = await portal({ standIn, heartbeatIntervalS: 0.1, waitS: 0.05 });
    const worker = new Worker(new LeadOpsClient(server.url, creds), { async scrape() { return []; } }, { concurrency: 1 });
    const done = worker.run();
    await new Promise((r) => setTimeout(r, 700));
    worker.stop();
    await done;
    await server.close();
    // The first heartbeat at start and the courtesy one at stop are always sent.
    const heartbeats = server.calls("/heartbeat").length;
    if (standIn) assert.ok(heartbeats <= 3, `${heartbeats} heartbeats with stand-ins`);
    else assert.ok(heartbeats >= 5, `${heartbeats} heartbeats without stand-ins`);
  }
});

test("a full heartbeat still goes out when the last one is older than five minutes", () => {
  const worker = new Worker(new LeadOpsClient("http://127.0.0.1:9", creds), { async scrape() { return []; } });
  const now = Date.now();
  worker.client.lastStandInAt = now - 1000;
  worker.heartbeatSentAt = now - 10_000;
  assert.equal(worker.heartbeatSkippable(now), true);
  worker.heartbeatSentAt = now - 301_000;
  assert.equal(worker.heartbeatSkippable(now), false);
  worker.heartbeatSentAt = now - 10_000;
  worker.client.lastStandInAt = now - 31_000; // older than the 30 s interval
  assert.equal(worker.heartbeatSkippable(now), false);
});

test("a key pushed in a pull answer that stood in for a heartbeat is stored, then used", async () => {
  const server = await portal({ waitS: 0.05, pushKey: { key_id: "k2", secret: "s2" } });
  const stored = [];
  const client = new LeadOpsClient(server.url, creds, { onCredentials: (keyId, secret) => { stored.push([keyId, secret]); } });
  try {
    const answer = await client.pull(1, undefined, { waitS: 0.05 });
    assert.deepEqual(stored, [["k2", "s2"]]);
    assert.equal(client.keyId, "k2");
    assert.deepEqual(answer.credentials, { pending: { key_id: "k2" } }); // the secret goes no further
    assert.ok(client.lastStandInAt !== null);
  } finally {
    await server.close();
  }
});
