/**
 * A real ACME CA for the http.tls.letsencrypt tests: Debian's `pebble` (Let's Encrypt's test CA),
 * with `pebble-challtestsrv` (same package) as its DNS server answering 127.0.0.1 for every name,
 * both on free loopback ports and stopped by PID. Pebble validates TLS-ALPN-01 for real: it
 * connects to `tlsPort` (berth's port) with the host's name as SNI. Random validation sleeps are
 * off (PEBBLE_VA_NOSLEEP); validation itself is never skipped. Pebble's own HTTPS certificate is
 * made by the test PKI (openssl); its issuing root is read from its management interface.
 *
 * Missing programs skip on a developer's machine and fail under CI=true (external-program.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { freePort } from "./distribution-process.js";
import { requireProgram, type ProgramCheck } from "./external-program.js";
import type { TestPki } from "./test-pki.js";

export function requirePebble(): ProgramCheck[] {
  return [requireProgram("pebble"), requireProgram("pebble-challtestsrv")];
}

export interface PebbleServer {
  /** The ACME directory URL. */
  directoryURL: string;
  /** Pebble's HTTPS certificate's CA (PEM file): what a client of the ACME API must trust. */
  apiCA: string;
  /** The root that issued berth's certificates (PEM). */
  issuingRoot(): Promise<string>;
  /** Orders pebble has accepted so far (from its log). */
  orderCount(): number;
  log(): string;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  pki: TestPki;
  /** Where pebble validates TLS-ALPN-01: berth's port. */
  tlsPort: number;
}

function launch(path: string, args: string[], env: Record<string, string>, ready: RegExp, name: string): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(path, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (ready.test(output)) {
        clearInterval(timer);
        resolve({ child, output: () => output });
      } else if (child.exitCode !== null || child.signalCode !== null) {
        clearInterval(timer);
        reject(new Error(`${name} exited before it was ready:\n${output}`));
      }
    }, 20);
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(child.pid, "SIGTERM");
  await exited;
}

export async function startPebble(options: PebbleOptions): Promise<PebbleServer> {
  const [pebble, challtestsrv] = requirePebble();
  if (!pebble!.path || !challtestsrv!.path) throw new Error(`cannot start pebble: ${pebble!.skip || challtestsrv!.skip}`);
  const { pki } = options;
  const apiCert = await pki.issue(`pebble-${options.tlsPort}`, { serverNames: { dns: ["localhost"], ips: ["127.0.0.1"] }, keyType: "ec" });
  const [dnsPort, acmePort, managementPort] = [await freePort(), await freePort(), await freePort()];
  const dns = await launch(
    challtestsrv!.path,
    ["-dns01", `127.0.0.1:${dnsPort}`, "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", `127.0.0.1:${await freePort()}`, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
    {},
    /Starting management server/,
    "pebble-challtestsrv",
  );
  const configFile = join(pki.dir, `pebble-${options.tlsPort}.json`);
  await writeFile(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: apiCert.cert,
        privateKey: apiCert.key,
        httpPort: await freePort(),
        tlsPort: options.tlsPort,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  let server;
  try {
    server = await launch(pebble!.path, ["-config", configFile, "-dnsserver", `127.0.0.1:${dnsPort}`, "-strict=false"], { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" }, /ACME directory available/, "pebble");
  } catch (err) {
    await stopChild(dns.child);
    throw err;
  }
  const { child, output } = server;
  return {
    directoryURL: `https://127.0.0.1:${acmePort}/dir`,
    apiCA: pki.ca.cert,
    issuingRoot: async () => {
      const ca = await import("node:fs/promises").then((fs) => fs.readFile(pki.ca.cert));
      return new Promise<string>((resolve, reject) => {
        const req = request(`https://127.0.0.1:${managementPort}/roots/0`, { ca }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
          res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`pebble /roots/0: ${res.statusCode} ${body}`))));
        });
        req.on("error", reject);
        req.end();
      });
    },
    orderCount: () => (output().match(/Added order "/g) ?? []).length,
    log: output,
    stop: async () => {
      await stopChild(child);
      await stopChild(dns.child);
    },
  };
}
