// Typed errors: the protocol's error shape `{"error": {"code", "message", "fields"?}}` mapped to one
// class (docs/API.md), and the two errors a provider plug-in throws.

export class ClientError extends Error {}

/** No HTTP answer at all (connection refused, reset, timeout). */
export class TransportError extends ClientError {
  constructor(message, { cause } = {}) {
    super(message, { cause });
    this.name = "TransportError";
  }
}

/** An HTTP error answer of the portal: `status`, `code`, `message`, `fields`, `retryAfterS`. */
export class ProtocolError extends ClientError {
  constructor(status, code, message, { fields = null, retryAfterS = null } = {}) {
    super(`${status} ${code}: ${message}`);
    this.name = "ProtocolError";
    this.status = status;
    this.code = code;
    this.detail = message;
    this.fields = fields;
    this.retryAfterS = retryAfterS;
  }

  /** Worth the same request again later: 429, 503 and other 5xx. */
  get retryable() {
    return this.status === 429 || this.status >= 500;
  }
}

/** Parse an error answer; a body that is not the protocol's shape still gives a typed error. */
export function errorFromResponse(status, text, retryAfterS = null) {
  let code = `http_${status}`;
  let message = "";
  let fields = null;
  try {
    const parsed = text ? JSON.parse(text) : null;
    const error = parsed && typeof parsed === "object" ? parsed.error : null;
    if (error && typeof error === "object") {
      code = String(error.code || code);
      message = String(error.message || "");
      fields = error.fields && typeof error.fields === "object" ? error.fields : null;
    }
  } catch {
    message = String(text || "").slice(0, 200).trim();
  }
  return new ProtocolError(status, code, message, { fields, retryAfterS });
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date); null when absent or unreadable. */
export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined || value === "") return null;
  const text = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, (date - now) / 1000);
}

/** Thrown by a provider: the source blocked us (captcha, 403). Reported `failed`, not retryable by default;
 * with a browser page at hand the worker uploads a screenshot as evidence first. */
export class BlockedError extends Error {
  constructor(message, { code = "blocked", retryable = false } = {}) {
    super(message);
    this.name = "BlockedError";
    this.code = code;
    this.retryable = retryable;
  }
}

/** Thrown by a provider: a passing failure (timeout, network); reported `failed` and retryable. */
export class RetryableError extends Error {
  constructor(message, { code = "retryable" } = {}) {
    super(message);
    this.name = "RetryableError";
    this.code = code;
    this.retryable = true;
  }
}
