#!/usr/bin/env node
// The worker process (the entrypoint a release's worker-manifest.json names):
//
//   node bin/worker.mjs --url URL --credentials-file F --provider MODULE [--batch N] [--concurrency N]
//        [--chromium PATH] [--duration S] [--self-test]
//
// --self-test loads the code and the provider, signs one heartbeat carrying `self_test` and exits 0
// (how the supervising agent tests a version before it switches to it).
import path from "node:path";
import { pathToFileURL } from "node:url";

import { LeadOpsClient } from "../src/client.mjs";
import { stderrLogger } from "../src/logtail.mjs";
import {
  AGENT_RUNNING_VERSION_ENV, AgentLink, agentSelfTest, credentialsRead, credentialsWrite, ownVersion,
} from "../src/runtime.mjs";
import { Worker } from "../src/worker.mjs";

export function parseArgs(argv) {
  const options = { batch: 5, concurrency: 2, selfTest: false };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = () => {
      if (argv[i + 1] === undefined) throw new Error(`${flag} needs a value`);
      i += 1;
      return argv[i];
    };
    if (flag === "--url") options.url = value();
    else if (flag === "--credentials-file") options.credentialsFile = value();
    else if (flag === "--provider") options.provider = value();
    else if (flag === "--batch") options.batch = Number(value());
    else if (flag === "--concurrency") options.concurrency = Number(value());
    else if (flag === "--chromium") options.chromium = value();
    else if (flag === "--duration") options.duration = Number(value());
    else if (flag === "--log-level") options.logLevel = value();
    else if (flag === "--self-test") options.selfTest = true;
    else throw new Error(`unknown option ${flag}`);
  }
  if (!options.url || !options.credentialsFile) throw new Error("--url and --credentials-file are required");
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const log = stderrLogger("node-worker", options.logLevel || "info");
  const credentials = credentialsRead(options.credentialsFile);
  const client = new LeadOpsClient(options.url, credentials, {
    log,
    onCredentials: (keyId, secret) => credentialsWrite(options.credentialsFile,
      { workerId: credentials.workerId, keyId, secret }),
  });
  const provider = options.provider
    ? (await import(pathToFileURL(path.resolve(options.provider)).href)).default
    : { async scrape() { return []; } };
  if (!provider || typeof provider.scrape !== "function") throw new Error("the provider module exports no scrape()");
  const version = ownVersion();
  if (options.selfTest) {
    // Report as the version that runs now: the one under test is not running yet.
    const running = process.env[AGENT_RUNNING_VERSION_ENV] || version;
    await client.heartbeat({ version: running, status: "self_test", runningJobs: 0,
                             selfTest: { version, ok: true, mode: "launch", node: process.version } });
    process.stdout.write(JSON.stringify({ ok: true, version }) + "\n");
    return 0;
  }
  let worker;
  const agentLink = AgentLink.fromEnvironment({ onLost: () => worker?.stop() });
  worker = new Worker(client, provider, {
    version, batch: options.batch, concurrency: options.concurrency, log, agentLink,
    executablePath: options.chromium ?? process.env.LEADOPS_CHROMIUM ?? null, selfTest: agentSelfTest(),
  });
  process.on("SIGTERM", () => worker.stop());
  process.on("SIGINT", () => worker.stop());
  if (options.duration) setTimeout(() => worker.stop(), options.duration * 1000).unref();
  const summary = await worker.run();
  process.stdout.write(JSON.stringify(summary) + "\n");
  return 0;
}

main().then((code) => process.exit(code), (error) => {
  process.stderr.write(`node-worker: ${error.stack ?? error}\n`);
  process.exit(1);
});
