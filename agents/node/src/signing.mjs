// Request signing of the worker wire protocol (docs/API.md, "Signing"): nine lines, HMAC-SHA256.
import { createHash, createHmac, randomBytes } from "node:crypto";

export const SCHEME = "LEADOPS-HMAC-SHA256";

/** Lowercase hex SHA-256 of the raw body (of "" for an empty body). */
export function contentSha256(body) {
  return createHash("sha256").update(body ?? Buffer.alloc(0)).digest("hex");
}

/** At least 16 random bytes, base64url without padding. */
export function newNonce() {
  return randomBytes(16).toString("base64url");
}

/** The signed string: the nine lines joined by "\n", no trailing newline. */
export function stringToSign({ method, path, query = "", workerId, keyId, timestamp, nonce, contentSha256: hash }) {
  return [SCHEME, String(method).toUpperCase(), path, query, workerId, keyId, String(timestamp), nonce, hash]
    .join("\n");
}

/** The six headers of a signed request. `body` is a Buffer or a string (UTF-8), `query` the raw query. */
export function signRequest({ method, path, query = "", body = "", workerId, keyId, secret,
                              timestamp = Math.floor(Date.now() / 1000), nonce = newNonce() }) {
  const hash = contentSha256(typeof body === "string" ? Buffer.from(body, "utf8") : body);
  const canonical = stringToSign({ method, path, query, workerId, keyId, timestamp, nonce, contentSha256: hash });
  const signature = createHmac("sha256", Buffer.from(secret, "utf8")).update(canonical, "utf8").digest("hex");
  return {
    "X-LeadOps-Worker": workerId,
    "X-LeadOps-Key-Id": keyId,
    "X-LeadOps-Timestamp": String(timestamp),
    "X-LeadOps-Nonce": nonce,
    "X-LeadOps-Content-SHA256": hash,
    Authorization: `${SCHEME} Signature=${signature}`,
  };
}
