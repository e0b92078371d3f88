#!/usr/bin/env -S node --max-semi-space-size=2
// The flag (also in `npm start`): V8's young generation capped at 2 MiB per semi-space instead of
// 16. A registry's garbage is many small, short-lived request objects; measured with the
// benchmarks, it keeps requests per second and cuts resident memory under load by about a third.
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { berthVersion } from "../berth-version.js";
import { ConfigError } from "../config/config.js";
import { describeConfig, loadConfig } from "../config/load-config.js";
import { CollectionRunningError } from "../gc/registry-lease.js";
import { createLogger, type Logger } from "../log/logger.js";
import { setHeapGrowth } from "../process/heap-growth.js";
import { effectiveDrainMs } from "./compose.js";
import { runGarbageCollect } from "./garbage-collect.js";
import { serve } from "./serve.js";
import { checkStartPrerequisites } from "./start-checks.js";
import { isWorker, parseWorkerCount, runWorkers } from "./workers.js";

// Until the storage is known (serve raises it for object storage): see src/process/heap-growth.ts.
setHeapGrowth(false);

const USAGE = `berth — a container registry (OCI distribution spec v1.1, drop-in for CNCF distribution)

Usage:
  berth serve [config.yml]       run the registry (default: filesystem storage in ./data, port 5000)
  berth config check FILE        validate a configuration and print the effective settings
  berth garbage-collect [config.yml] [--dry-run] [--delete-untagged]
                                 delete blobs no manifest refers to (distribution's garbage-collect)
  berth --version                print the version
  berth --help                   print this help

Every configuration key can be set from the environment as REGISTRY_<KEY_PATH>,
for example REGISTRY_HTTP_ADDR=:5001 or REGISTRY_STORAGE_DELETE_ENABLED=true.
`;

const SERVE_USAGE = `Usage: berth serve [--workers N|auto] [config.yml]

Runs the registry. Without a file it runs on the embedded default: filesystem storage under
./data, listening on :5000. The file uses distribution's config.yml keys; REGISTRY_* environment
variables override them. Stop it with Ctrl-C (SIGINT) or SIGTERM: in-flight requests finish first.

  --workers N|auto   run N processes sharing the port ("auto": one per core). Workers are nodes
                     like any other, so this needs shared storage (filesystem or s3, not inmemory).
`;

const CONFIG_USAGE = `Usage: berth config check FILE

Validates FILE (plus REGISTRY_* environment overrides), prints warnings for keys berth ignores,
and prints the effective configuration with secrets masked. Exits 1, naming the key, when the file
is invalid or when \`berth serve\` would refuse to start with it: the files it names (htpasswd,
certificates and keys, token keys) must be readable and usable, the filesystem root writable, the
health check hosts resolvable. So run it where berth runs, as the user it runs as.
`;


async function main(argv: string[]): Promise<number> {
  // garbage-collect has flags of its own (--dry-run, -m, …): it parses its arguments itself.
  if (argv[0] === "garbage-collect") return runGarbageCollect(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    options: { help: { type: "boolean", short: "h" }, version: { type: "boolean", short: "v" }, workers: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const [command, ...rest] = positionals;
  if (values.version) {
    process.stdout.write(`berth ${berthVersion()}\n`);
    return 0;
  }
  if (command === undefined) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  if (command === "serve") {
    if (values.help) {
      process.stdout.write(SERVE_USAGE);
      return 0;
    }
    if (rest.length > 1) return usageError(`serve takes at most one configuration file, got ${rest.length}`);
    if (values.workers !== undefined && !isWorker()) {
      const count = parseWorkerCount(values.workers);
      if (count === undefined) return usageError(`--workers takes a positive number or "auto", got ${JSON.stringify(values.workers)}`);
      if (count > 1) {
        const { config } = await loadConfig({ file: rest[0], env: process.env });
        // Each worker would order and renew its own certificates, racing on the cache directory.
        if (config.http.tls?.letsEncrypt !== undefined) return usageError("--workers cannot be used with http.tls.letsencrypt yet: run one process, or obtain the certificate outside berth");
        // What each worker would refuse at start stops here rather than in each worker, restarted
        // forever. Each worker logs its own warnings; the primary's would repeat them.
        await checkStartPrerequisites(config, process.env, createLogger({ level: "error", formatter: "text" }));
        return runWorkers(count, config);
      }
    }
    return runServe(rest[0]);
  }
  if (command === "config") {
    if (values.help || rest[0] !== "check" || rest.length !== 2) {
      process.stdout.write(CONFIG_USAGE);
      return values.help ? 0 : 2;
    }
    const { config, warnings, source } = await loadConfig({ file: rest[1], env: process.env });
    for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
    // What serve refuses at start (files, the storage root, …), by the code serve runs.
    await checkStartPrerequisites(config, process.env, warningLogger());
    process.stdout.write(`${source}: valid\n${JSON.stringify(describeConfig(config), null, 2)}\n`);
    return 0;
  }
  if (command === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  return usageError(`unknown command ${JSON.stringify(command)}`);
}

async function runServe(file: string | undefined): Promise<number> {
  const { config, warnings } = await loadConfig({ file, env: process.env });
  // Listened for before serve() starts: a signal that arrives once berth has said it listens, but
  // before serve() has returned, must stop it cleanly (status 0), not kill it with Node's default.
  let signalled = false;
  let onSignal = (): void => {
    signalled = true;
  };
  const handler = (): void => onSignal();
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  let running: Awaited<ReturnType<typeof serve>>;
  try {
    running = await serve(config, warnings);
  } catch (err) {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
    throw err;
  }
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
      const drain = effectiveDrainMs(config);
      const force = setTimeout(() => {
        running.server.closeAllConnections();
      }, drain);
      force.unref();
      void running.close().then(resolve);
    };
    if (signalled) stop();
    else onSignal = stop;
  });
  return 0;
}

/** A logger whose warnings print as config check prints the loader's: `warning: <message>`. */
function warningLogger(): Logger {
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line === "") continue;
        const entry = JSON.parse(line) as { msg?: unknown };
        process.stderr.write(`warning: ${String(entry.msg)}\n`);
      }
      callback();
    },
  });
  return createLogger({ level: "warn", formatter: "json", destination });
}

function usageError(message: string): number {
  process.stderr.write(`berth: ${message}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A worker's IPC channel to the primary would keep it alive after the server closed.
    if (isWorker()) process.disconnect?.();
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof CollectionRunningError) {
      process.stderr.write(`berth: ${err.message}\n`);
    } else if (err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`berth: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
      return;
    } else if (err instanceof Error && "code" in err && (err.code === "EADDRINUSE" || err.code === "EACCES")) {
      process.stderr.write(`berth: cannot listen: ${err.message}\n`);
    } else {
      process.stderr.write(`berth: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
