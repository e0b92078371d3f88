import { ForwardingRegistry } from "../registry/forwarding-registry.js";
import type { Registry, RequestOrigin } from "../registry/registry.js";
import type { RegistryStats } from "../registry/registry-stats.js";
import type { Repository } from "../registry/repository.js";
import type { Notifier } from "./notifier.js";
import { NotifyingRepository, RequestEvents } from "./notifying-repository.js";

/**
 * The registry with notifications: each request's repositories record events on its behalf
 * (`forRequest`); everything else is the wrapped registry's.
 */
export class NotifyingRegistry extends ForwardingRegistry {
  constructor(
    inner: Registry,
    private readonly notifier: Notifier,
    private readonly events?: RequestEvents,
  ) {
    super(inner);
  }

  override repository(name: string): Repository {
    const repository = this.inner.repository(name);
    return this.events ? new NotifyingRepository(repository, this.events) : repository;
  }

  forRequest(origin: RequestOrigin): Registry {
    return new NotifyingRegistry(this.inner.forRequest(origin), this.notifier, new RequestEvents(this.notifier, origin));
  }

  override async health(): Promise<Record<string, string>> {
    const [inner, outboxes] = await Promise.all([this.inner.health(), this.notifier.health()]);
    return { ...inner, ...outboxes };
  }

  override stats(): RegistryStats {
    return { ...this.inner.stats(), notifications: this.notifier.status() };
  }

  override diagnostics(): Record<string, unknown> {
    return { ...this.inner.diagnostics(), notifications: { endpoints: this.notifier.status() } };
  }

  override open(): void {
    this.inner.open();
    this.notifier.start();
  }

  /** Delivers what it can within the drain time before the wrapped registry closes. */
  override async close(): Promise<void> {
    await this.notifier.close();
    await this.inner.close();
  }
}
