// The last lines a scrape logged, kept per attempt and sent as the report's `log_tail` (at most
// 16 KiB). Masked here already (phones, e-mail addresses, secrets), before the portal masks it again.
export const LOG_TAIL_MAX_BYTES = 16 * 1024;

const PATTERNS = [
  [/[\w.+-]+@[\w-]+(\.[\w-]+)+/g, "[email]"],
  [/((?:secret|token|password|authorization|signature)["']?\s*[:=]\s*)["']?[^\s"',]+/gi, "$1[secret]"],
  // Phone-like runs: 7+ digits (Latin, Arabic-Indic, Persian), spaces and dashes allowed inside.
  [/\+?[0-9\u0660-\u0669\u06f0-\u06f9](?:[\s-]?[0-9\u0660-\u0669\u06f0-\u06f9]){6,}/g, (m) => "*".repeat(Math.max(0, m.length - 2)) + m.slice(-2)],
];

export function mask(text) {
  let out = String(text);
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

export class LogTail {
  constructor(maxBytes = LOG_TAIL_MAX_BYTES) {
    this.maxBytes = maxBytes;
    this.lines = [];
    this.bytes = 0;
  }

  add(...parts) {
    const line = `${new Date().toISOString()} ${mask(parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" "))}`;
    this.lines.push(line);
    this.bytes += Buffer.byteLength(line) + 1;
    while (this.bytes > this.maxBytes && this.lines.length > 1) {
      this.bytes -= Buffer.byteLength(this.lines.shift()) + 1;
    }
  }

  text() {
    let text = this.lines.join("\n");
    while (Buffer.byteLength(text) > this.maxBytes) text = text.slice(Math.floor(text.length / 4));
    return text;
  }
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };

/** A `log(level, message)` writing timestamped lines at or above `levelName` to stderr as `name`. */
export function stderrLogger(name, levelName = "info") {
  const threshold = LEVELS[levelName.toLowerCase()] ?? 20;
  return (level, message) => {
    if ((LEVELS[level] ?? 20) >= threshold) process.stderr.write(`${new Date().toISOString()} ${level} ${name} ${message}\n`);
  };
}
