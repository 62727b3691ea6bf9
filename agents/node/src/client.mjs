// The signed client of the worker wire protocol (docs/API.md): every v1 and v1.1 call, retries of
// 429 / 503 / 5xx and of lost connections with backoff (a Retry-After is obeyed), each try signed
// again (a fresh timestamp and nonce), and a pending key pushed by a heartbeat (or by a pull or an
// exchange answer that stood in for one, docs/API.md "Liveness") adopted at once.
import { randomUUID } from "node:crypto";
import { writeSync } from "node:fs";

import { errorFromResponse, parseRetryAfter, ProtocolError, TransportError } from "./errors.mjs";
import { signRequest } from "./signing.mjs";

export const API_PREFIX = "/api/v1";

export const DEFAULT_RETRY = Object.freeze({
  maxAttempts: 5, backoffBaseS: 0.5, backoffCapS: 30, maxRetryAfterS: 300,
});

/** Equal-jitter exponential backoff, the shape of the server's job backoff. */
export function backoffS(retryNumber, { backoffBaseS, backoffCapS } = DEFAULT_RETRY, random = Math.random) {
  const ceiling = Math.min(backoffCapS, backoffBaseS * 2 ** (retryNumber - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `signal` (optional) or a timeout of `ms`, whichever aborts first (AbortSignal.any is Node 20+);
 * `release()` removes the listener from `signal`, which outlives the request (a worker's stop signal).
 */
function withTimeout(signal, ms) {
  const timeout = AbortSignal.timeout(ms);
  if (!signal) return { signal: timeout, release: () => {} };
  const both = new AbortController();
  const onStop = () => both.abort(signal.reason);
  if (signal.aborted) both.abort(signal.reason);
  signal.addEventListener("abort", onStop, { once: true });
  timeout.addEventListener("abort", () => both.abort(timeout.reason), { once: true });
  return { signal: both.signal, release: () => signal.removeEventListener("abort", onStop) };
}

export class LeadOpsClient {
  /**
   * @param {string} baseUrl e.g. http://127.0.0.1:8000
   * @param {{workerId: string, keyId: string, secret: string}} credentials
   * @param {object} [options] retry, timeoutMs, onCredentials(keyId, secret) (persist a pushed key;
   *   it may throw: the old key is kept then), sleep(ms), log(level, message)
   */
  constructor(baseUrl, { workerId, keyId, secret }, options = {}) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    this.workerId = workerId;
    this.keyId = keyId;
    this.secret = secret;
    this.retry = { ...DEFAULT_RETRY, ...(options.retry || {}) };
    this.timeoutMs = options.timeoutMs ?? 15000;
    this.onCredentials = options.onCredentials ?? null;
    this.sleep = options.sleep ?? sleep;
    this.log = options.log ?? (() => {});
    this.stats = { requests: 0, failed_requests: 0, retries: 0 };
    this.clockOffsetMs = 0;
    // When a pull or exchange answer last stood in for a heartbeat (Date.now() ms), or null.
    this.lastStandInAt = null;
  }

  toJSON() {
    return { baseUrl: this.baseUrl, workerId: this.workerId, keyId: this.keyId }; // never the secret
  }

  useCredentials(keyId, secret) {
    this.keyId = keyId;
    this.secret = secret;
  }

  /** The server's clock as this worker last learned it (from a heartbeat's server_time). */
  serverNow() {
    return new Date(Date.now() + this.clockOffsetMs);
  }

  // --- protocol calls -------------------------------------------------------------------------

  async heartbeat({ version, status, runningJobs = 0, metrics, selfTest } = {}) {
    const payload = { version, status, running_jobs: runningJobs };
    if (metrics !== undefined) payload.metrics = metrics;
    if (selfTest !== undefined && selfTest !== null) payload.self_test = selfTest;
    const sentAt = Date.now();
    const answer = await this.request("POST", "/heartbeat", { payload });
    const receivedAt = Date.now();
    const server = Date.parse(answer.server_time);
    if (!Number.isNaN(server)) this.clockOffsetMs = server - (sentAt + receivedAt) / 2;
    return this.#credentialsAdopt(answer);
  }

  config() {
    return this.request("GET", "/config");
  }

  /**
   * Take up to `max` jobs. With `waitS` > 0 a long poll: the server holds the request until work comes
   * or the wait ends (docs/API.md, "Long poll"); `signal` abandons it (the server never hands a job
   * to a client that hung up), and an abandoned poll is not retried.
   */
  async pull(max = 1, providers, { waitS = 0, signal } = {}) {
    const payload = { max };
    if (providers) payload.providers = [...providers];
    const options = { payload };
    if (waitS > 0) {
      payload.wait_s = waitS;
      // The answer may take the whole wait: the transport's timeout covers it with a margin.
      options.timeoutMs = Math.max(this.timeoutMs, (waitS + 15) * 1000);
      options.signal = signal;
    }
    return this.#standIn(await this.request("POST", "/jobs/pull", options));
  }

  extend(jobId, attemptId, seconds) {
    const payload = { attempt_id: String(attemptId) };
    if (seconds !== undefined && seconds !== null) payload.seconds = seconds;
    return this.request("POST", `/jobs/${Number(jobId)}/extend`, { payload });
  }

  release(attemptIds) {
    const payload = attemptIds ? { attempt_ids: [...attemptIds].map(String) } : {};
    return this.request("POST", "/jobs/release", { payload });
  }

  report(jobId, { attemptId, outcome, leads = [], error, logTail, idempotencyKey = randomUUID() }) {
    const payload = { attempt_id: String(attemptId), outcome, leads };
    if (error) payload.error = error;
    if (logTail) payload.log_tail = logTail;
    return this.request("POST", `/jobs/${Number(jobId)}/report`,
      { payload, headers: { "Idempotency-Key": idempotencyKey } });
  }

  /** One signed round trip: report finished work (items keep their idempotency_key across tries), take new work. */
  async exchange(reports = [], max = 0, providers) {
    const pull = { max };
    if (providers) pull.providers = [...providers];
    return this.#standIn(await this.request("POST", "/jobs/exchange", { payload: { reports, pull } }));
  }

  /** A PNG or JPEG screenshot of what the worker saw, kept with the attempt. */
  evidence(jobId, attemptId, image, contentType = "image/png") {
    return this.request("POST", `/jobs/${Number(jobId)}/evidence`,
      { raw: image, contentType, headers: { "X-LeadOps-Attempt-Id": String(attemptId) } });
  }

  updateCheck(version) {
    const query = version ? new URLSearchParams({ version }).toString() : "";
    return this.request("GET", "/updates/check", { query });
  }

  manifest(channel) {
    return this.request("GET", `/releases/${encodeURIComponent(channel)}/latest.json`);
  }

  updateReport(version, stage, ok, details) {
    const payload = { version, stage, ok };
    if (details) payload.details = details;
    return this.request("POST", "/updates/report", { payload });
  }

  /**
   * Signed GET of an artifact into the file descriptor `fd`, from byte `offset` (a `Range` then).
   * A 200 where a 206 was asked for means the whole body: `onRestart()` truncates the file first.
   * Bytes written stay written when the connection drops (a TransportError): resume from there.
   */
  async download(path, fd, { offset = 0, onRestart = () => {} } = {}) {
    const rel = path.startsWith(API_PREFIX) ? path.slice(API_PREFIX.length) : path;
    const headers = offset ? { Range: `bytes=${offset}-` } : {};
    const response = await this.#sendOnce("GET", `${this.baseUrl}${API_PREFIX}${rel}`, Buffer.alloc(0), headers);
    this.stats.requests += 1;
    if (!response.ok) {
      this.stats.failed_requests += 1;
      throw errorFromResponse(response.status, await response.text(),
        parseRetryAfter(response.headers.get("retry-after")));
    }
    if (offset && response.status !== 206) onRestart();
    let written = 0;
    try {
      for await (const chunk of response.body) {
        writeSync(fd, chunk);
        written += chunk.length;
      }
    } catch (error) {
      throw new TransportError(`download interrupted after ${written} bytes: ${error.message}`, { cause: error });
    }
    return written;
  }

  // --- transport ----------------------------------------------------------------------------

  /** One signed call under /api/v1 with retries; the JSON answer. */
  async request(method, path, { payload, raw, query = "", headers = {}, contentType = "application/json",
                                timeoutMs = this.timeoutMs, signal } = {}) {
    const body = raw !== undefined ? Buffer.from(raw)
      : payload === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(payload), "utf8");
    const url = `${this.baseUrl}${API_PREFIX}${path}${query ? `?${query}` : ""}`;
    for (let attempt = 1; ; attempt += 1) {
      let delayS;
      let response;
      try {
        response = await this.#sendOnce(method, url, body, headers, contentType, { timeoutMs, signal });
      } catch (error) {
        this.stats.requests += 1;
        this.stats.failed_requests += 1;
        if (signal?.aborted) throw new TransportError(`${method} ${path}: abandoned`, { cause: error });
        if (attempt >= this.retry.maxAttempts) {
          throw new TransportError(`${method} ${path}: ${error?.cause?.message ?? error.message}`, { cause: error });
        }
        delayS = backoffS(attempt, this.retry);
        this.log("warn", `${method} ${path} failed (${error?.cause?.code ?? error.name}); retry ${attempt} in ${delayS.toFixed(1)}s`);
      }
      if (response) {
        this.stats.requests += 1;
        const text = await response.text();
        if (response.ok) return jsonObject(response.status, text);
        this.stats.failed_requests += 1;
        const error = errorFromResponse(response.status, text, parseRetryAfter(response.headers.get("retry-after")));
        if (!error.retryable || attempt >= this.retry.maxAttempts) throw error;
        delayS = error.retryAfterS !== null ? Math.min(error.retryAfterS, this.retry.maxRetryAfterS)
          : backoffS(attempt, this.retry);
        this.log("warn", `${method} ${path} answered ${error.status} ${error.code}; retry ${attempt} in ${delayS.toFixed(1)}s`);
      }
      this.stats.retries += 1;
      await this.sleep(delayS * 1000);
    }
  }

  async #sendOnce(method, url, body, extraHeaders = {}, contentType = "application/json",
                  { timeoutMs = this.timeoutMs, signal } = {}) {
    // Sign what goes on the wire: the URL's own percent-encoded path and raw query.
    const parsed = new URL(url);
    const query = parsed.search.startsWith("?") ? parsed.search.slice(1) : "";
    const headers = {
      ...extraHeaders,
      ...signRequest({ method, path: parsed.pathname, query, body, workerId: this.workerId,
                       keyId: this.keyId, secret: this.secret }),
    };
    if (body.length) headers["Content-Type"] = contentType;
    const abort = withTimeout(signal, timeoutMs);
    try {
      return await fetch(parsed, { method, headers, body: body.length ? body : undefined, signal: abort.signal });
    } finally {
      abort.release();
    }
  }

  /** A pull or exchange answer: when it stood in for a heartbeat, note it and adopt a pushed key. */
  async #standIn(answer) {
    if (answer && typeof answer === "object" && "update_target" in answer) {
      this.lastStandInAt = Date.now();
      return this.#credentialsAdopt(answer);
    }
    return answer;
  }

  async #credentialsAdopt(answer) {
    const pending = answer?.credentials?.pending;
    if (!pending || typeof pending !== "object") return answer;
    const { key_id: keyId, secret } = pending;
    if (typeof keyId === "string" && typeof secret === "string" && keyId && secret && keyId !== this.keyId) {
      // Persist first, switch second: a key used but not stored would be lost at a restart.
      let stored = true;
      if (this.onCredentials) {
        try {
          await this.onCredentials(keyId, secret);
        } catch (error) {
          stored = false;
          this.log("error", `could not store pushed key ${keyId}; keeping the old key (${error.message})`);
        }
      }
      if (stored) {
        this.useCredentials(keyId, secret);
        this.log("info", `switched to pushed key ${keyId}`);
      }
    }
    // The caller may log the answer: it never carries the secret further than here.
    return { ...answer, credentials: { pending: { key_id: keyId } } };
  }
}

function jsonObject(status, text) {
  if (!text) return {};
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ProtocolError(status, "invalid_response", "The answer is not a JSON object.");
  }
  return parsed;
}
