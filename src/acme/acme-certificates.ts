/**
 * http.tls.letsencrypt: the registry's certificates come from an ACME CA, as distribution's do
 * through Go's autocert. A handshake for an allowed host with no valid certificate orders one
 * (proved by TLS-ALPN-01 on the same port) and waits for it; the certificate is kept in the cache
 * directory and renewed in the background before it expires; a restart reads it back instead of
 * ordering again. A host not in `hosts`, or a handshake without a server name, fails.
 *
 * Concurrency: at most one order per host at a time (handshakes for that host wait on it), and
 * hosts never wait on each other. A failed order is not retried for a minute (autocert does the
 * same), so a CA outage or a bad DNS record does not turn every handshake into a new order.
 */
import { createSecureContext, type SecureContext, type SecureContextOptions } from "node:tls";
import type { Socket } from "node:net";
import * as acme from "acme-client";
import type { LetsEncryptConfig } from "../config/config.js";
import { ConfigError } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { CertificateProvider } from "../server/tls-server.js";
import { AcmeCacheDirectory } from "./acme-cache-directory.js";
import { loadAccountKey } from "./account-key.js";
import { decodeCertificateEntry, encodeCertificateEntry, type CertificateEntry } from "./certificate-entry.js";
import { AcmeOrderError, orderCertificate } from "./certificate-order.js";
import { probeAcmeDirectory } from "./directory-probe.js";
import { renewalTime, type RenewalPolicy } from "./renewal-policy.js";
import { TlsAlpnResponder } from "./tls-alpn-responder.js";

/** How long a failed first order answers handshakes with its error before another is tried. */
const FAILED_ORDER_HOLD_MS = 60_000;
/** Renewal retries: from a minute, doubling, to an hour (the old certificate is served meanwhile). */
const RENEW_RETRY_MIN_MS = 60_000;
const RENEW_RETRY_MAX_MS = 3_600_000;
/** Node's timers fire at once past 2^31-1 ms: longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface HostState {
  entry?: CertificateEntry;
  context?: SecureContext;
  /** The order in progress (first certificate or renewal). */
  ordering?: Promise<SecureContext>;
  failure?: { error: Error; until: number };
  timer?: NodeJS.Timeout;
  retryMs?: number;
}

export interface AcmeCertificatesOptions {
  config: LetsEncryptConfig;
  /** The TLS settings every certificate's context carries (versions, ciphers, client CAs). */
  baseOptions: SecureContextOptions;
  log: Logger;
  /** Tests only: renew this long before expiry instead of autocert's policy. */
  renewal?: RenewalPolicy;
}

export class AcmeCertificates implements CertificateProvider {
  private readonly hosts: ReadonlySet<string>;
  private readonly states = new Map<string, HostState>();
  private readonly responder = new TlsAlpnResponder();
  private closed = false;

  private constructor(
    private readonly options: AcmeCertificatesOptions,
    private readonly cache: AcmeCacheDirectory,
    private readonly client: acme.Client,
  ) {
    this.hosts = new Set(options.config.hosts);
  }

  /**
   * Opens the cache directory, loads or creates the account key, registers (or finds) the account
   * at the CA and reads back cached certificates. Throws a ConfigError when the CA cannot be
   * reached or refuses the account, so `berth serve` fails before listening, as distribution 2.8
   * did when it could not register.
   */
  static async start(options: AcmeCertificatesOptions): Promise<AcmeCertificates> {
    const { config } = options;
    const cache = await AcmeCacheDirectory.open(config.cacheDirectory);
    const accountKey = await loadAccountKey(cache);
    // Polling backs off from one second (acme-client's default, five, makes each handshake that
    // waits for an order wait that much longer); requests that fail are retried by acme-client.
    const client = new acme.Client({ directoryUrl: config.directoryURL, accountKey, backoffMin: 1000, backoffMax: 30_000 });
    try {
      await probeAcmeDirectory(config.directoryURL);
      await client.createAccount({ termsOfServiceAgreed: true, ...(config.email === undefined ? {} : { contact: [`mailto:${config.email}`] }) });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ConfigError("http.tls.letsencrypt.directoryurl", `cannot register an ACME account at ${config.directoryURL}: ${reason}`);
    }
    const certificates = new AcmeCertificates(options, cache, client);
    for (const host of certificates.hosts) await certificates.loadCached(host);
    return certificates;
  }

  /** The certificate for a handshake (node:tls SNICallback); an error fails the handshake. */
  SNICallback = (servername: string, callback: (err: Error | null, context?: SecureContext) => void): void => {
    const host = servername.toLowerCase().replace(/\.$/, "");
    if (!this.hosts.has(host)) {
      callback(new Error(`TLS server name ${JSON.stringify(host)} is not in http.tls.letsencrypt.hosts`));
      return;
    }
    const state = this.state(host);
    if (state.context !== undefined && state.entry !== undefined && Date.now() < state.entry.notAfter.getTime()) {
      callback(null, state.context);
      return;
    }
    this.order(host).then(
      (context) => callback(null, context),
      (err: Error) => callback(err),
    );
  };

  /** Takes TLS-ALPN-01 validations off the port before the registry's server sees them. */
  acceptConnection(socket: Socket, handOn: (socket: Socket) => void): void {
    this.responder.accept(socket, handOn);
  }

  /** Stops renewals; an order in progress finishes but schedules nothing. */
  close(): void {
    this.closed = true;
    for (const state of this.states.values()) clearTimeout(state.timer);
  }

  private state(host: string): HostState {
    let state = this.states.get(host);
    if (state === undefined) this.states.set(host, (state = {}));
    return state;
  }

  private async loadCached(host: string): Promise<void> {
    const data = await this.cache.get(host);
    const entry = data === undefined ? undefined : decodeCertificateEntry(data, host, new Date());
    if (entry === undefined) return;
    this.install(host, entry);
    this.options.log.info({ host, notAfter: entry.notAfter.toISOString() }, `ACME certificate for ${host} read from ${this.cache.path}`);
  }

  /** The host's one order in progress, or a new one. */
  private order(host: string): Promise<SecureContext> {
    const state = this.state(host);
    if (state.ordering !== undefined) return state.ordering;
    if (state.failure !== undefined && Date.now() < state.failure.until) return Promise.reject(state.failure.error);
    const ordering = this.issue(host).finally(() => {
      state.ordering = undefined;
    });
    state.ordering = ordering;
    return ordering;
  }

  private async issue(host: string): Promise<SecureContext> {
    const state = this.state(host);
    const { log } = this.options;
    log.info({ host, directory: this.options.config.directoryURL }, `ordering an ACME certificate for ${host}`);
    let issued;
    try {
      issued = await orderCertificate(this.client, host, this.responder);
    } catch (err) {
      const error = err instanceof Error ? err : new AcmeOrderError(host, String(err));
      state.failure = { error, until: Date.now() + FAILED_ORDER_HOLD_MS };
      log.warn({ host, err: error.message }, `ACME order for ${host} failed`);
      throw error;
    }
    const data = encodeCertificateEntry(issued.key, issued.chainPem);
    const entry = decodeCertificateEntry(Buffer.from(data), host, new Date());
    if (entry === undefined) {
      const error = new AcmeOrderError(host, "the CA returned a certificate that is not valid for this host now");
      state.failure = { error, until: Date.now() + FAILED_ORDER_HOLD_MS };
      throw error;
    }
    try {
      await this.cache.put(host, data);
    } catch (err) {
      // Served anyway: the next start orders again, which beats refusing handshakes now.
      log.error({ host, err: err instanceof Error ? err.message : String(err) }, `cannot keep the ACME certificate for ${host} in ${this.cache.path}`);
    }
    state.failure = undefined;
    log.info({ host, notAfter: entry.notAfter.toISOString() }, `ACME certificate for ${host} issued, valid until ${entry.notAfter.toISOString()}`);
    return this.install(host, entry);
  }

  private install(host: string, entry: CertificateEntry): SecureContext {
    const state = this.state(host);
    state.entry = entry;
    state.context = createSecureContext({ ...this.options.baseOptions, key: entry.keyPem, cert: entry.chainPem });
    state.retryMs = undefined;
    this.schedule(host, renewalTime(entry, this.options.renewal));
    return state.context;
  }

  private schedule(host: string, at: number): void {
    const state = this.state(host);
    clearTimeout(state.timer);
    if (this.closed) return;
    const delay = at - Date.now();
    state.timer = setTimeout(() => (Date.now() >= at ? this.renew(host) : this.schedule(host, at)), Math.min(MAX_TIMER_MS, Math.max(0, delay)));
    state.timer.unref();
  }

  private renew(host: string): void {
    const state = this.state(host);
    // A renewal is not held back by an earlier failed first order: the failure hold is for handshakes.
    state.failure = undefined;
    this.order(host).catch(() => {
      const retry = Math.min(RENEW_RETRY_MAX_MS, state.retryMs === undefined ? RENEW_RETRY_MIN_MS : state.retryMs * 2);
      state.retryMs = retry;
      this.schedule(host, Date.now() + retry);
    });
  }
}
