// The public face of the package: what a worker author imports.
export { LeadOpsClient, API_PREFIX, backoffS } from "./client.mjs";
export { signRequest, stringToSign, contentSha256, newNonce, SCHEME } from "./signing.mjs";
export { BlockedError, RetryableError, ProtocolError, TransportError, ClientError, parseRetryAfter } from "./errors.mjs";
export { ManifestVerifier, UpdateRefused, canonicalJson, manifestEntryFor, trustedKeysFrom } from "./manifest.mjs";
export { Worker } from "./worker.mjs";
export { Agent, AgentState } from "./agent.mjs";
export { LogTail, mask, stderrLogger } from "./logtail.mjs";
export { tarGz, safeExtract, tarMembers } from "./tar.mjs";
