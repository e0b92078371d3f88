import { createHmac } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { EndpointConfig } from "../config/config.js";
import type { EnvelopeBody } from "./event-envelope.js";

/** Bytes of a receiver's answer read before the connection is cut: nobody needs more. */
const MAX_RESPONSE_BYTES = 64 * 1024;

export type DeliveryResult = { delivered: true; status: number } | { delivered: false; status?: number; error: string };

/**
 * POSTs envelopes to one endpoint over a kept-alive connection. A delivery is accepted on 2xx and
 * 3xx, as distribution's http sink accepts it; anything else, a timeout or a connection error is a
 * failure. Errors name what happened, never a header value.
 */
export class WebhookSender {
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly headers: OutgoingHttpHeaders;

  constructor(private readonly config: Pick<EndpointConfig, "url" | "headers" | "timeoutMs" | "signingKey">) {
    this.url = new URL(config.url);
    const https = this.url.protocol === "https:";
    this.agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 1 }) : new HttpAgent({ keepAlive: true, maxSockets: 1 });
    this.headers = { "User-Agent": "berth-notifications" };
    for (const [name, values] of Object.entries(config.headers)) this.headers[name] = values.length === 1 ? values[0] : values;
  }

  /**
   * Resolves with the outcome. `written` is called once the whole body has been handed to the
   * socket, and never when the request was cut before that: the parts are read until then.
   */
  send(envelope: EnvelopeBody, signal: AbortSignal, written?: () => void): Promise<DeliveryResult> {
    const headers: OutgoingHttpHeaders = { ...this.headers, "Content-Type": envelope.contentType, "Content-Length": envelope.length };
    if (this.config.signingKey !== undefined) {
      const hmac = createHmac("sha256", this.config.signingKey);
      for (const part of envelope.parts) hmac.update(part);
      headers["X-Berth-Signature-256"] = `sha256=${hmac.digest("hex")}`;
    }
    const request = this.url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (result: DeliveryResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve(result);
      };
      const req = request(this.url, { method: "POST", headers, agent: this.agent }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        let read = 0;
        res.on("data", (chunk: Buffer) => {
          read += chunk.length;
          // A receiver that answers with a flood: its status stands, its body is not read.
          if (read > MAX_RESPONSE_BYTES) res.destroy();
        });
        const done = (): void =>
          finish(status >= 200 && status < 400 ? { delivered: true, status } : { delivered: false, status, error: `answered ${status}` });
        res.on("end", done);
        res.on("close", done);
        res.on("error", done);
      });
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.config.timeoutMs} ms`)), this.config.timeoutMs);
      const onAbort = (): void => {
        req.destroy(new Error("stopped"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      req.on("error", (err: NodeJS.ErrnoException) => finish({ delivered: false, error: describeError(err) }));
      if (written) req.once("finish", written);
      // Corked: the parts leave in one write (end uncorks).
      req.cork();
      const last = envelope.parts.length - 1;
      for (let i = 0; i < last; i++) req.write(envelope.parts[i]!);
      req.end(envelope.parts[last]);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function describeError(err: NodeJS.ErrnoException): string {
  if (err.code === "ECONNREFUSED") return "connection refused";
  if (err.code === "ECONNRESET") return "connection reset";
  if (err.code === "ENOTFOUND" || err.code === "EAI_AGAIN") return "host not found";
  return err.code ? `${err.code}: ${err.message}` : err.message;
}
