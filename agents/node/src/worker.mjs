// The worker loop (docs/RELEASES.md, "The Node agent"; the wire calls are docs/API.md): one heartbeat
// timer, one exchange loop that reports finished work and takes new work in the same signed round
// trip, a long poll while idle (docs/API.md, "Long poll"), a lease renewed at half its remaining
// length, and a graceful stop that hands back every lease it does not finish. A heartbeat is skipped
// when a pull or exchange answer stood in for it within the interval (docs/API.md, "Liveness"), so an
// idle worker sends about two requests a minute.
//
// A provider plug-in is an object (the default export of a module) with
//   name?: string, providers?: string[]      which jobs it takes (all when absent)
//   async scrape(job, {page, log, signal})   -> leads [{name, phone, ...}]; throws BlockedError or
//                                             RetryableError (or anything: reported failed, retryable)
//   async newPage?({executablePath})         -> {page, close()}: the plug-in brings its own
//                                             playwright-core / puppeteer-core; the worker passes the
//                                             system Chromium path and screenshots the page on a block
import { randomUUID } from "node:crypto";

import { BlockedError } from "./errors.mjs";
import { LogTail } from "./logtail.mjs";

/** Wait `ms`, or less when `signal` aborts; the listener goes away either way (no leak per wait). */
const sleep = (ms, signal) => new Promise((resolve) => {
  if (signal?.aborted) return resolve();
  const done = () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", done);
    resolve();
  };
  const timer = setTimeout(done, ms);
  signal?.addEventListener("abort", done, { once: true });
});

export const DEFAULT_SETTINGS = Object.freeze({
  poll_interval_s: 5, heartbeat_interval_s: 30, max_batch: 10, lease_seconds: null, long_poll_wait_s: 0,
});

// A full heartbeat (status, running jobs, metrics) goes out at least this often, stand-ins or not.
export const HEARTBEAT_FULL_MS = 300_000;

export class Worker {
  /**
   * @param {LeadOpsClient} client
   * @param {object} provider the plug-in
   * @param {object} options version, batch, concurrency, executablePath (Chromium), stopGraceMs,
   *   agentLink, selfTest, log(level, message)
   */
  constructor(client, provider, options = {}) {
    this.client = client;
    this.provider = provider;
    this.version = options.version ?? "dev";
    this.batch = options.batch ?? 5;
    this.concurrency = options.concurrency ?? 2;
    this.executablePath = options.executablePath ?? null;
    this.stopGraceMs = options.stopGraceMs ?? 10000;
    this.agentLink = options.agentLink ?? null;
    this.selfTest = options.selfTest ?? null;
    this.log = options.log ?? (() => {});
    this.settings = { ...DEFAULT_SETTINGS };
    this.running = new Map(); // attempt_id -> {job, abort, renew}
    this.outbox = []; // exchange report items not yet answered
    this.maxItems = 50; // LEADOPS_MAX_EXCHANGE_REPORTS by default; halved when the portal says too much
    this.counters = { jobs_done: 0, jobs_failed: 0, jobs_dropped: 0, jobs_released: 0, leads_sent: 0, evidence_sent: 0 };
    this.stopping = false;
    this.idle = false; // the last pull found nothing: the next one long-polls
    this.pollAbandoned = false; // stop() cut a long poll short (see #shutdown)
    this.heartbeatSentAt = 0;
    this.stopController = new AbortController();
    this.wakeController = new AbortController();
  }

  /** Ask the loop to stop; `run()` then resolves once leases are reported or released. */
  stop() {
    if (this.stopping) return;
    this.stopping = true;
    this.stopController.abort();
    this.wake();
  }

  wake() {
    this.wakeController.abort();
    this.wakeController = new AbortController();
  }

  summary() {
    return { worker_id: this.client.workerId, version: this.version, ...this.counters, ...this.client.stats };
  }

  async configLoad() {
    try {
      const config = await this.client.config();
      for (const key of Object.keys(DEFAULT_SETTINGS)) {
        if (typeof config[key] === "number" && config[key] > 0) this.settings[key] = config[key];
      }
      this.config = config;
    } catch (error) {
      this.log("warn", `GET /config failed: ${error.message}`);
    }
  }

  async heartbeat(status = "running") {
    const answer = await this.client.heartbeat({
      version: this.version, status, runningJobs: this.running.size,
      metrics: { ...this.counters, requests: this.client.stats.requests,
                 failed_requests: this.client.stats.failed_requests, retries: this.client.stats.retries },
      selfTest: this.selfTest,
    });
    this.heartbeatSentAt = Date.now();
    await this.#heartbeatAnswered(answer);
    return answer;
  }

  /** What a heartbeat's answer says, from the heartbeat or from an answer that stood in for one. */
  async #heartbeatAnswered(answer) {
    this.agentLink?.send("heartbeat", { version: this.version, update_target: answer.update_target ?? null });
    if (answer.config_version !== undefined && answer.config_version !== this.configVersion) {
      if (this.configVersion !== undefined) await this.configLoad();
      this.configVersion = answer.config_version;
    }
  }

  /** A pull or exchange answer that refreshed this worker's liveness stands in for a heartbeat. */
  async #standInNote(answer) {
    if (answer && typeof answer === "object" && "update_target" in answer) await this.#heartbeatAnswered(answer);
  }

  /** Needless now: an answer stood in within the interval, and the last full one is recent enough. */
  heartbeatSkippable(now = Date.now()) {
    const answered = this.client.lastStandInAt;
    const recent = answered !== null && answered !== undefined
      && now - answered < this.settings.heartbeat_interval_s * 1000;
    const fullEvery = Math.max(HEARTBEAT_FULL_MS, this.settings.heartbeat_interval_s * 1000);
    return recent && now - this.heartbeatSentAt < fullEvery;
  }

  async #heartbeatLoop() {
    while (!this.stopping) {
      if (!this.heartbeatSkippable()) {
        try {
          await this.heartbeat();
        } catch (error) {
          this.log("warn", `heartbeat failed: ${error.message}`);
        }
      }
      await sleep(this.settings.heartbeat_interval_s * 1000, this.stopController.signal);
    }
  }

  /** Run until stop(): heartbeat, exchange, scrape; then report or release what is left. */
  async run() {
    await this.configLoad();
    const heartbeats = this.#heartbeatLoop();
    try {
      await this.#exchangeLoop();
    } finally {
      await this.#shutdown();
      await heartbeats;
    }
    return this.summary();
  }

  async #exchangeLoop() {
    while (!this.stopping) {
      const free = Math.max(0, this.concurrency - this.running.size);
      const want = Math.min(free, this.batch, this.settings.max_batch);
      const wake = this.wakeController.signal;
      if (want === 0 && this.outbox.length === 0) {
        await sleep(this.settings.poll_interval_s * 1000, wake);
        continue;
      }
      if (this.#mayLongPoll()) {
        await this.#longPoll(want);
        continue;
      }
      const sent = this.outbox.splice(0, this.maxItems);
      let answer;
      try {
        answer = await this.client.exchange(sent, want, this.provider.providers);
      } catch (error) {
        this.#exchangeFailed(sent, error);
        await sleep(this.settings.poll_interval_s * 1000, this.stopController.signal);
        continue;
      }
      this.maxItems = Math.min(50, this.maxItems * 2);
      this.#results(sent, answer.results ?? []);
      await this.#standInNote(answer);
      const jobs = Array.isArray(answer.jobs) ? answer.jobs : [];
      for (const job of jobs) this.#start(job);
      if (jobs.length > 0) this.idle = false;
      if (jobs.length === 0 && sent.length === 0) {
        const retryS = typeof answer.retry_after_s === "number" && answer.retry_after_s > 0 ? answer.retry_after_s : 0;
        // Nothing now: the next pull waits on the server for work instead of sleeping here, unless
        // it already did and the server asks for a pause (a breaker or a quota).
        if (this.settings.long_poll_wait_s > 0 && this.running.size === 0 && (!this.idle || retryS === 0)) {
          this.idle = true;
          continue;
        }
        await sleep((retryS || this.settings.poll_interval_s) * 1000, wake);
      }
    }
  }

  #mayLongPoll() {
    return this.idle && this.settings.long_poll_wait_s > 0 && this.outbox.length === 0 && this.running.size === 0;
  }

  /** An idle worker's pull, held by the server until work comes or the wait ends; stop() abandons it. */
  async #longPoll(want) {
    let answer;
    try {
      answer = await this.client.pull(want, this.provider.providers,
        { waitS: this.settings.long_poll_wait_s, signal: this.stopController.signal });
    } catch (error) {
      if (this.stopping) {
        // Abandoned by stop(): an answer the portal sent a moment before was lost with the connection
        // (fetch cannot half-close it), so the shutdown gives back every lease of this worker.
        this.pollAbandoned = true;
        return;
      }
      this.log("warn", `long poll failed: ${error.message}`);
      this.idle = false; // the next try is a plain exchange, after the usual pause
      await sleep(this.settings.poll_interval_s * 1000, this.stopController.signal);
      return;
    }
    await this.#standInNote(answer);
    const jobs = Array.isArray(answer.jobs) ? answer.jobs : [];
    for (const job of jobs) this.#start(job); // a stop that came meanwhile releases them
    if (jobs.length > 0) {
      this.idle = false;
      return;
    }
    const retryS = typeof answer.retry_after_s === "number" && answer.retry_after_s > 0 ? answer.retry_after_s : 0;
    if (retryS > 0) await sleep(retryS * 1000, this.stopController.signal);
  }

  /** A whole exchange refused: 413/422 (too many items or leads) halves the next one, down to a
   * single item, which is then dropped; anything else keeps the items (same keys) for the next try. */
  #exchangeFailed(sent, error) {
    this.log("warn", `exchange failed: ${error.message}`);
    if ((error.status === 413 || error.status === 422) && sent.length === 1) {
      this.counters.jobs_dropped += 1;
      return;
    }
    if (error.status === 413 || error.status === 422) this.maxItems = Math.max(1, Math.floor(sent.length / 2));
    this.outbox.unshift(...sent); // same items, same keys: a replay answers the first answer
  }

  #results(sent, results) {
    results.forEach((result, index) => {
      const item = sent[index];
      if (!item) return;
      if (result.status === 200) {
        if (item.outcome === "succeeded") this.counters.jobs_done += 1; else this.counters.jobs_failed += 1;
        this.counters.leads_sent += item.leads.length;
      } else if (result.status === 429 || result.status >= 500) {
        this.outbox.push(item); // try this item again, with its own key
      } else {
        // 409 attempt_superseded / job_finished, 404, 422: the server will not take it; never retried.
        this.counters.jobs_dropped += 1;
        this.log("warn", `report of job ${item.job_id} refused: ${result.status} ${result.body?.error?.code ?? ""}`);
      }
    });
  }

  #start(job) {
    const abort = new AbortController();
    const entry = { job, abort, timer: null, tail: new LogTail() };
    this.running.set(job.attempt_id, entry);
    this.#leaseSchedule(entry, job.lease_expires_at);
    this.#work(entry).finally(() => {
      clearTimeout(entry.timer);
      this.running.delete(job.attempt_id);
      this.wake();
    });
  }

  /** Extend the lease when half of what is left has passed. */
  #leaseSchedule(entry, expiresAt) {
    clearTimeout(entry.timer);
    const remainingMs = Date.parse(expiresAt) - this.client.serverNow().getTime();
    const delay = Math.max(1000, Number.isNaN(remainingMs) ? 30000 : remainingMs / 2);
    entry.timer = setTimeout(() => this.#leaseRenew(entry), delay);
    entry.timer.unref?.();
  }

  async #leaseRenew(entry) {
    if (!this.running.has(entry.job.attempt_id) || entry.done) return;
    try {
      const answer = await this.client.extend(entry.job.id, entry.job.attempt_id, this.settings.lease_seconds ?? undefined);
      this.#leaseSchedule(entry, answer.lease_expires_at);
    } catch (error) {
      if (error.status === 409 || error.status === 404) {
        this.log("info", `lease of job ${entry.job.id} lost (${error.code}); dropping it`);
        entry.lost = true;
        entry.abort.abort();
        return;
      }
      this.log("warn", `could not extend job ${entry.job.id}: ${error.message}`);
      entry.timer = setTimeout(() => this.#leaseRenew(entry), 1000);
    }
  }

  async #work(entry) {
    const { job, tail } = entry;
    const log = (...parts) => tail.add(...parts);
    let browser = null;
    let item;
    try {
      if (typeof this.provider.newPage === "function") {
        browser = await this.provider.newPage({ executablePath: this.executablePath });
      }
      log(`job ${job.id} attempt ${job.attempt} provider ${job.provider}`);
      const leads = await this.provider.scrape(job, { page: browser?.page, log, signal: entry.abort.signal });
      item = { outcome: "succeeded", leads: Array.isArray(leads) ? leads : [] };
    } catch (error) {
      log(`failed: ${error?.name ?? "Error"}: ${error?.message ?? error}`);
      const blocked = error instanceof BlockedError || error?.name === "BlockedError";
      if (blocked) await this.#evidence(entry, error, browser?.page);
      item = {
        outcome: "failed", leads: [],
        error: { code: String(error?.code ?? (blocked ? "blocked" : "scrape_error")).slice(0, 64),
                 message: String(error?.message ?? error).slice(0, 500),
                 retryable: blocked ? Boolean(error.retryable) : error?.retryable !== false },
      };
    } finally {
      entry.done = true;
      await browser?.close?.().catch(() => {});
    }
    if (entry.lost) return; // another attempt owns the job now
    this.outbox.push({ job_id: job.id, idempotency_key: randomUUID(), attempt_id: job.attempt_id,
                       ...item, log_tail: tail.text() });
  }

  async #evidence(entry, error, page) {
    try {
      let image = Buffer.isBuffer(error.screenshot) ? error.screenshot : null;
      if (!image && page && typeof page.screenshot === "function") image = await page.screenshot({ type: "png" });
      if (!image) return;
      const type = image[0] === 0xff && image[1] === 0xd8 ? "image/jpeg" : "image/png";
      await this.client.evidence(entry.job.id, entry.job.attempt_id, image, type);
      this.counters.evidence_sent += 1;
      entry.tail.add("screenshot uploaded as evidence");
    } catch (failure) {
      entry.tail.add(`evidence not uploaded: ${failure.message}`);
    }
  }

  async #shutdown() {
    // Let running scrapes finish for a grace period, report what finished, release the rest.
    const deadline = Date.now() + this.stopGraceMs;
    while (this.running.size && Date.now() < deadline) await sleep(100);
    const unfinished = [...this.running.keys()];
    for (const entry of this.running.values()) { entry.lost = true; entry.abort.abort(); clearTimeout(entry.timer); }
    for (let tries = 0; this.outbox.length && tries < 10; tries += 1) {
      const sent = this.outbox.splice(0, this.maxItems);
      try {
        this.#results(sent, (await this.client.exchange(sent, 0)).results ?? []);
      } catch (error) {
        this.#exchangeFailed(sent, error);
      }
    }
    if (unfinished.length || this.pollAbandoned) {
      // After an abandoned long poll, every lease of this worker (no attempt ids): what is still leased
      // to it now is what it ran and did not finish, or what that poll was answered with. One process
      // runs a worker id at a time (the agent stops the old child before it starts the new one).
      const ids = this.pollAbandoned ? undefined : unfinished;
      try {
        const answer = await this.client.release(ids);
        this.counters.jobs_released += answer.released ?? 0;
      } catch (error) {
        this.log("warn", `could not release ${ids ? ids.length : "the"} leases: ${error.message}`);
      }
    }
    try {
      await this.heartbeat("stopping");
    } catch { /* the last heartbeat is a courtesy */ }
    this.agentLink?.send("stopped");
  }
}
