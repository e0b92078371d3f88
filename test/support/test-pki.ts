/**
 * Certificates for the TLS and token-auth tests, made with the `openssl` command line (Debian's
 * openssl package) in a temporary directory: a CA, and leaf certificates it signs for servers
 * (SAN localhost and 127.0.0.1), clients (mutual TLS) and token signing. Nothing here is a product
 * feature; the keys live as long as the test run.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOk } from "./external-program.js";

export type KeyType = "rsa" | "ec";

export interface CertFiles {
  /** PEM certificate */
  cert: string;
  /** PEM private key (PKCS#8) */
  key: string;
}

export interface IssueOptions {
  /** Server certificate for these DNS names and IP addresses. */
  serverNames?: { dns?: string[]; ips?: string[] };
  /** A client certificate (extendedKeyUsage clientAuth). */
  client?: boolean;
  /** An intermediate CA. */
  ca?: boolean;
  keyType?: KeyType;
  /** Validity in days from now (default 2). */
  days?: number;
  /** The issuing CA (default: the root of this PKI). */
  issuer?: CertFiles;
}

export interface TestPki {
  dir: string;
  /** The root CA: self-signed, basicConstraints CA:TRUE. */
  ca: CertFiles;
  issue(name: string, options?: IssueOptions): Promise<CertFiles>;
  /** Another, unrelated root CA (for "not trusted" cases). */
  newRoot(name: string, keyType?: KeyType): Promise<CertFiles>;
  cleanup(): Promise<void>;
}

function keyArgs(keyType: KeyType): string[] {
  return keyType === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] : ["-newkey", "rsa:2048"];
}

export async function createTestPki(openssl = "openssl"): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), "berth-pki-"));
  let serial = 1;

  async function newRoot(name: string, keyType: KeyType = "rsa"): Promise<CertFiles> {
    const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    await runOk(openssl, [
      "req", "-x509", ...keyArgs(keyType), "-nodes", "-keyout", files.key, "-out", files.cert, "-days", "2",
      "-subj", `/CN=${name}`,
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    return files;
  }

  const ca = await newRoot("test-ca");

  async function issue(name: string, options: IssueOptions = {}): Promise<CertFiles> {
    const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    const csr = join(dir, `${name}.csr`);
    const ext = join(dir, `${name}.ext`);
    const lines: string[] = [];
    if (options.ca) {
      lines.push("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature");
    } else {
      lines.push("basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment");
    }
    const names = [...(options.serverNames?.dns ?? []).map((d) => `DNS:${d}`), ...(options.serverNames?.ips ?? []).map((ip) => `IP:${ip}`)];
    if (names.length > 0) lines.push(`subjectAltName=${names.join(",")}`, "extendedKeyUsage=serverAuth");
    if (options.client) lines.push("extendedKeyUsage=clientAuth");
    await writeFile(ext, `${lines.join("\n")}\n`);
    const issuer = options.issuer ?? ca;
    await runOk(openssl, ["req", ...keyArgs(options.keyType ?? "rsa"), "-nodes", "-keyout", files.key, "-out", csr, "-subj", `/CN=${name}`]);
    await runOk(openssl, [
      "x509", "-req", "-in", csr, "-CA", issuer.cert, "-CAkey", issuer.key, "-set_serial", String(++serial),
      "-out", files.cert, "-days", String(options.days ?? 2), "-extfile", ext, "-sha256",
    ]);
    return files;
  }

  return { dir, ca, issue, newRoot, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A certificate's DER, base64 (standard alphabet), as a JWS `x5c` entry carries it. */
export async function x5cEntry(certFile: string): Promise<string> {
  const pem = await readFile(certFile, "utf8");
  return pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "");
}
