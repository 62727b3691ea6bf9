// Shared by the unit tests: a local HTTP server that records requests, and manifest signing.
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { createServer } from "node:http";

import { canonicalJson } from "../src/manifest.mjs";

/** Start a server whose `handler(req, body, res)` answers; resolves {url, requests, close}. */
export async function serve(handler) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      try {
        await handler(req, body, res);
      } catch (error) {
        res.writeHead(599);
        res.end(String(error));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

export function json(res, status, payload, headers = {}) {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(payload));
}

/** A manifest key like the portal's: {keyId, publicB64, sign(signed) -> envelope}. */
export function manifestKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
  const keyId = createHash("sha256").update(raw).digest("hex").slice(0, 16);
  return {
    keyId,
    publicB64: raw.toString("base64"),
    envelope(signed) {
      const sig = sign(null, Buffer.from(canonicalJson(signed), "ascii"), privateKey).toString("base64");
      return { signed, signatures: [{ keyid: keyId, sig }] };
    },
  };
}

export function signedManifest(key, overrides = {}, release = {}) {
  const later = new Date(Date.now() + 86400_000).toISOString().replace(/\.\d+Z$/, "Z");
  return key.envelope({
    schema: 1, channel: "stable", sequence: 5, issued_at: new Date().toISOString(), expires_at: later,
    release: { version: "2.0.0", url: "/api/v1/releases/2.0.0/download", sha256: "0".repeat(64), size: 10, ...release },
    previous: null, rollout: null, ...overrides,
  });
}
