import type { StorageDriver } from "../../driver/storage-driver.js";
import type { CollectorLease } from "./collector-lease.js";

/**
 * The driver the collector deletes through: every `delete` first checks that the collector lease
 * is fresh (CollectorFencedError otherwise), so a collector that lost touch with its lease stops
 * deleting before any node stops enforcing its run.
 */
export function fencedDriver(driver: StorageDriver, lease: CollectorLease): StorageDriver {
  return new Proxy(driver, {
    get(target, property, receiver) {
      if (property === "delete") {
        return (...args: Parameters<StorageDriver["delete"]>) => {
          lease.assertHeld();
          return target.delete(...args);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
