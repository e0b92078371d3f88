import { authorizationHeader, quoted, scopeParam, unauthorized, type AccessController, type Access, type AuthRequest, type Grant } from "./access-controller.js";

export interface SillyOptions {
  realm: string;
  service: string;
}

/**
 * distribution's "silly" access controller, for demonstrations and client testing: any non-empty
 * Authorization header is accepted, whatever it says; without one the answer is a Bearer challenge
 * naming the scope, so a client goes through the token dance. It secures nothing.
 */
export class SillyAccessController implements AccessController {
  constructor(private readonly options: SillyOptions) {}

  authorize(req: AuthRequest, needed: readonly Access[]): Promise<Grant> {
    if (authorizationHeader(req) !== undefined) return Promise.resolve({ user: "silly" });
    let challenge = `Bearer realm=${quoted(this.options.realm)},service=${quoted(this.options.service)}`;
    const scope = scopeParam(needed);
    if (scope !== "") challenge += `,scope=${quoted(scope)}`;
    return Promise.reject(unauthorized(needed, challenge));
  }
}
