#!/usr/bin/env node
// The supervising agent (docs/RELEASES.md, "The Node agent"):
//
//   node bin/agent.mjs --url URL --install-dir DIR --trust-key KEYID:BASE64 [--trust-key ...]
//        [--credentials-file F] [--crash-limit N] [--crash-window S] [--stop-timeout S]
//        [--self-test-timeout S] [--quarantine S] [--check-interval S] -- [worker options]
//
// The credentials file ({worker_id, key_id, secret}, mode 0600; default DIR/credentials.json) is
// shared with the worker, which stores a pushed key there.
import path from "node:path";

import { Agent } from "../src/agent.mjs";
import { LeadOpsClient } from "../src/client.mjs";
import { stderrLogger } from "../src/logtail.mjs";
import { trustedKeysFrom } from "../src/manifest.mjs";
import { credentialsRead } from "../src/runtime.mjs";

function parseArgs(argv) {
  const cut = argv.indexOf("--");
  const own = cut === -1 ? argv : argv.slice(0, cut);
  const options = { trust: {}, workerArgs: cut === -1 ? [] : argv.slice(cut + 1) };
  const numbers = { "--crash-limit": "crashLimit", "--crash-window": "crashWindowS", "--stop-timeout": "stopTimeoutS",
                    "--self-test-timeout": "selfTestTimeoutS", "--quarantine": "quarantineS", "--check-interval": "checkIntervalS" };
  for (let i = 0; i < own.length; i += 2) {
    const [flag, value] = [own[i], own[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--url") options.url = value;
    else if (flag === "--install-dir") options.root = path.resolve(value);
    else if (flag === "--credentials-file") options.credentialsFile = path.resolve(value);
    else if (flag === "--log-level") options.logLevel = value;
    else if (flag === "--trust-key") {
      const at = value.indexOf(":");
      options.trust[value.slice(0, at)] = value.slice(at + 1);
    } else if (flag in numbers) {
      const number = Number(value);
      if (!Number.isFinite(number) || number < 0) throw new Error(`${flag} must be a number >= 0`);
      options[numbers[flag]] = number;
    } else throw new Error(`unknown option ${flag}`);
  }
  if (!options.url || !options.root || !Object.keys(options.trust).length) {
    throw new Error("--url, --install-dir and --trust-key are required");
  }
  options.credentialsFile ??= path.join(options.root, "credentials.json");
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const log = stderrLogger("node-agent", options.logLevel || "info");
  const trustedKeys = trustedKeysFrom(options.trust);
  const client = new LeadOpsClient(options.url, credentialsRead(options.credentialsFile), { log });
  const agent = new Agent(client, { ...options, trustedKeys, log });
  process.on("SIGTERM", () => agent.stop());
  process.on("SIGINT", () => agent.stop());
  await agent.run();
  return 0;
}

main().then((code) => process.exit(code), (error) => {
  process.stderr.write(`node-agent: error: ${error.message}\n`);
  process.exit(2);
});
