// The signing vectors are the Python reference tests' own (worker_client/tests/test_signing.py):
// read from that file, so both implementations are held to the same pinned values.
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";

import { contentSha256, newNonce, signRequest, stringToSign } from "../src/signing.mjs";

const PYTHON_VECTORS = new URL("../../../worker_client/tests/test_signing.py", import.meta.url);

function vectors() {
  const source = existsSync(PYTHON_VECTORS) ? readFileSync(PYTHON_VECTORS, "utf8") : "";
  const pick = (name, fallback) => (new RegExp(`^${name} = b?"([^"]*)"`, "m").exec(source) ?? [])[1] ?? fallback;
  return {
    secret: pick("SECRET", "correct horse battery staple"),
    body: pick("BODY", '{"max":5}'),
    bodySha256: pick("GOLDEN_BODY_SHA256", "17757150fe6a8ad9a7c02fd450ed75d5440ead4d039bf3e5f70373867eab9fc6"),
    signature: pick("GOLDEN_SIGNATURE", "e77db05a3c3118191baa1d220160e77323db1889346e9ae42adb7b108f0900a6"),
  };
}

const FIXED = { workerId: "w-riyadh-01", keyId: "key_01HX", timestamp: 1700000000, nonce: "AAECAwQFBgcICQoLDA0ODw" };

test("the vectors are read from the Python tests when the checkout has them", () => {
  if (process.env.CI === "true") assert.ok(existsSync(PYTHON_VECTORS), "worker_client/tests/test_signing.py is missing");
  const v = vectors();
  assert.equal(v.signature.length, 64);
});

test("the string to sign is the nine documented lines without a trailing newline", () => {
  const v = vectors();
  const canonical = stringToSign({ method: "post", path: "/api/v1/jobs/pull", query: "", ...FIXED, contentSha256: v.bodySha256 });
  assert.deepEqual(canonical.split("\n"), ["LEADOPS-HMAC-SHA256", "POST", "/api/v1/jobs/pull", "", "w-riyadh-01",
    "key_01HX", "1700000000", "AAECAwQFBgcICQoLDA0ODw", v.bodySha256]);
  assert.ok(!canonical.endsWith("\n"));
});

test("sign_request gives the six headers with the golden signature of the Python tests", () => {
  const v = vectors();
  assert.equal(contentSha256(Buffer.from(v.body)), v.bodySha256);
  const headers = signRequest({ method: "POST", path: "/api/v1/jobs/pull", query: "", body: Buffer.from(v.body), secret: v.secret, ...FIXED });
  assert.deepEqual(headers, {
    "X-LeadOps-Worker": "w-riyadh-01",
    "X-LeadOps-Key-Id": "key_01HX",
    "X-LeadOps-Timestamp": "1700000000",
    "X-LeadOps-Nonce": "AAECAwQFBgcICQoLDA0ODw",
    "X-LeadOps-Content-SHA256": v.bodySha256,
    Authorization: `LEADOPS-HMAC-SHA256 Signature=${v.signature}`,
  });
});

const independent = (secret, lines) => createHmac("sha256", Buffer.from(secret, "utf8")).update(lines.join("\n")).digest("hex");

test("the raw query is signed on its own line", () => {
  const { secret } = vectors();
  const headers = signRequest({ method: "get", path: "/api/v1/config", query: "x=1&y=%20z", body: "", secret, ...FIXED });
  const expected = independent(secret, ["LEADOPS-HMAC-SHA256", "GET", "/api/v1/config", "x=1&y=%20z", "w-riyadh-01",
    "key_01HX", "1700000000", "AAECAwQFBgcICQoLDA0ODw", createHash("sha256").update("").digest("hex")]);
  assert.equal(headers.Authorization, `LEADOPS-HMAC-SHA256 Signature=${expected}`);
});

test("the empty body hashes as SHA-256 of the empty string; a UTF-8 secret is its bytes", () => {
  assert.equal(contentSha256(Buffer.alloc(0)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const secret = "سر-ÄØ-секрет";
  const headers = signRequest({ method: "POST", path: "/p", body: "{}", secret, ...FIXED });
  assert.ok(headers.Authorization.endsWith(independent(secret, ["LEADOPS-HMAC-SHA256", "POST", "/p", "", "w-riyadh-01",
    "key_01HX", "1700000000", "AAECAwQFBgcICQoLDA0ODw", createHash("sha256").update("{}").digest("hex")])));
});

test("a nonce is 16 random bytes, base64url without padding, fresh each time", () => {
  const nonces = new Set(Array.from({ length: 200 }, newNonce));
  assert.equal(nonces.size, 200);
  for (const nonce of nonces) {
    assert.match(nonce, /^[A-Za-z0-9_-]+$/);
    assert.equal(Buffer.from(nonce, "base64url").length, 16);
  }
  const first = signRequest({ method: "GET", path: "/p", workerId: "w", keyId: "k", secret: "s" });
  assert.ok(Math.abs(Number(first["X-LeadOps-Timestamp"]) - Date.now() / 1000) < 5);
});
