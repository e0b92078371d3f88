/**
 * The TLS options of the Redis connections (redis.tls): the same for a single server, for the
 * sentinels and the master they name, and for every node of a Cluster. A client certificate and its key
 * (redis.tls.certificate, key) for a server that asks for one (tls-auth-clients), and the CAs the
 * server's certificate must chain to (redis.tls.rootcas, or clientcas), which then replace Node's
 * list, as Go's RootCAs replace the system's. Without them the server is checked against Node's CAs.
 *
 * distribution 3.0 put clientcas in the tls.Config's ClientCAs, which a Go client never reads, so
 * there a private CA for Redis could not work; later releases read rootcas into RootCAs. berth gives
 * both names that meaning.
 *
 * The files are read once, when berth starts (and by `berth config check`): a missing or unusable
 * file is a ConfigError naming its key, before anything listens.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { createSecureContext, type ConnectionOptions } from "node:tls";
import { ConfigError, type RedisConfig } from "../config/config.js";

/** Options for tls.connect to the Redis server, or undefined when redis.tls is off. */
export function loadRedisTlsOptions(redis: RedisConfig): ConnectionOptions | undefined {
  if (!redis.tls) return undefined;
  const files = redis.tlsFiles;
  // SNI only for a host name (an IP address in SNI is not allowed). Through Sentinel or on a
  // Cluster the servers are many and learnt at run time: no fixed name, so Node names and checks
  // each host it connects to, as Go's tls.Dial does for go-redis.
  const single = redis.masterName === undefined && redis.cluster.length === 0;
  const options: ConnectionOptions = single && isIP(redis.host) === 0 ? { servername: redis.host } : {};
  if (files.certificate !== undefined && files.key !== undefined) {
    const cert = read("redis.tls.certificate", files.certificate);
    const key = read("redis.tls.key", files.key);
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(cert);
    } catch (err) {
      throw new ConfigError("redis.tls.certificate", `${files.certificate} holds no usable PEM certificate: ${message(err)}`);
    }
    let privateKey;
    try {
      privateKey = createPrivateKey(key);
    } catch (err) {
      throw new ConfigError("redis.tls.key", `${files.key} holds no usable unencrypted PEM private key: ${message(err)}`);
    }
    if (!leaf.checkPrivateKey(privateKey)) {
      throw new ConfigError("redis.tls.key", `${files.key} is not the private key of the certificate in ${files.certificate}`);
    }
    options.cert = cert;
    options.key = key;
  }
  if (files.clientCAs.length > 0) {
    options.ca = files.clientCAs.map((file) => {
      const key = `redis.tls.${files.caKey}`;
      const pem = read(key, file);
      if (!pem.toString("latin1").includes("-----BEGIN CERTIFICATE-----")) throw new ConfigError(key, `${file} holds no PEM certificate`);
      return pem;
    });
  }
  try {
    createSecureContext(options);
  } catch (err) {
    throw new ConfigError("redis.tls", `the certificate files make no usable TLS context: ${message(err)}`);
  }
  return options;
}

function read(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${file}: ${message(err)}`);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
