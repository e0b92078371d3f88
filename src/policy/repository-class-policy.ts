/**
 * `policy.repository.classes`: the classes of content the registry accepts, as distribution applies
 * them to manifest pushes. An image manifest's class comes from its config's media type (`image`,
 * or `plugin` for a Docker plugin); an index or a manifest list has none and is always accepted.
 * With classes configured, an image manifest whose config is of no known class is refused too, as
 * distribution refuses it: that includes OCI artifacts, whose config names the artifact type.
 */
import { RegistryError } from "../errcode/registry-error.js";
import { DOCKER_MANIFEST, OCI_MANIFEST } from "../manifest/media-types.js";
import { parseManifest } from "../manifest/parse-manifest.js";
import { ForwardingRegistry, ForwardingRepository } from "../registry/forwarding-registry.js";
import type { Registry, RequestOrigin } from "../registry/registry.js";
import type { PutManifestResult, Reference, Repository } from "../registry/repository.js";

/** distribution's classes: the config media types it knows, per manifest type. */
const CLASS_OF_CONFIG: Record<string, Record<string, string>> = {
  [DOCKER_MANIFEST]: {
    "application/vnd.docker.container.image.v1+json": "image",
    "application/vnd.docker.plugin.v1+json": "plugin",
  },
  [OCI_MANIFEST]: {
    "application/vnd.oci.image.config.v1+json": "image",
  },
};

/**
 * The manifest's class; undefined for an index. DENIED for an image manifest whose config has no
 * class, with distribution's message. What is not a manifest at all is left to the repository,
 * which answers MANIFEST_INVALID as it would without a policy.
 */
export function manifestClass(content: Buffer, contentType: string | undefined): string | undefined {
  let mediaType: string;
  let configType: unknown;
  try {
    mediaType = parseManifest(content, contentType).mediaType;
    configType = (JSON.parse(content.toString("utf8")) as { config?: { mediaType?: unknown } }).config?.mediaType;
  } catch {
    return undefined;
  }
  const classes = CLASS_OF_CONFIG[mediaType];
  if (classes === undefined) return undefined;
  const found = typeof configType === "string" ? classes[configType] : undefined;
  if (found === undefined) throw new RegistryError("DENIED", `unknown manifest class for ${String(configType)}`);
  return found;
}

export class RepositoryClassPolicyRegistry extends ForwardingRegistry {
  constructor(
    inner: Registry,
    private readonly allowed: ReadonlySet<string>,
  ) {
    super(inner);
  }

  forRequest(origin: RequestOrigin): Registry {
    return new RepositoryClassPolicyRegistry(this.inner.forRequest(origin), this.allowed);
  }

  override repository(name: string): Repository {
    return new RepositoryClassPolicyRepository(this.inner.repository(name), this.allowed);
  }
}

class RepositoryClassPolicyRepository extends ForwardingRepository {
  constructor(
    inner: Repository,
    private readonly allowed: ReadonlySet<string>,
  ) {
    super(inner);
  }

  override async putManifest(reference: Reference, content: Buffer, contentType: string | undefined, extraTags?: string[]): Promise<PutManifestResult> {
    const found = manifestClass(content, contentType);
    if (found !== undefined && !this.allowed.has(found)) throw new RegistryError("DENIED", `registry does not allow ${found} manifest`);
    return this.inner.putManifest(reference, content, contentType, extraTags);
  }
}
