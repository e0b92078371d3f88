import { RegistryError } from "../errcode/registry-error.js";
import type { RequestInterceptor } from "../server/request-interceptor.js";
import type { HealthStatus } from "./health-status.js";

/** Routes that answer while checks are down: they are how operators and load balancers see why. */
const UNDRAINED_ROUTES = new Set(["health", "live", "ready", "status"]);

/** distribution's health.Handler answer, made once: a request while draining allocates nothing. */
const UNAVAILABLE = new RegistryError("UNAVAILABLE", undefined, "health check failed: please see /debug/health");

/**
 * While a health check is down, every API request answers `503 UNAVAILABLE`, as distribution's
 * health.Handler does, so a load balancer that watches status codes takes the node out. Installed
 * only when the `health` section configures a check; per request it reads one boolean.
 */
export function drainInterceptor(status: HealthStatus): RequestInterceptor {
  return {
    around(request, next) {
      if (status.down && !UNDRAINED_ROUTES.has(request.route)) return Promise.reject(UNAVAILABLE);
      return next();
    },
  };
}
