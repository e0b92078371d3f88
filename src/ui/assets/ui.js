// berth's web UI: one script, no framework, no build step. It reads the registry API (/v2/) and
// berth's read-only JSON view (/ui/api/) with the user's own credentials, exactly as a registry
// client does. Everything it shows from the registry is set as text (textContent, attribute
// values), never parsed as HTML: names, tags and annotations can hold anything.
"use strict";
(() => {
  // The page is "<root>ui/": root is "/", or http.prefix, or whatever path a reverse proxy serves
  // the registry under. The API and the JSON view are found beside it, wherever that is.
  const ROOT = location.pathname.slice(0, location.pathname.lastIndexOf("/ui/") + 1);
  const main = document.getElementById("main");
  const sessionNav = document.getElementById("session");
  const confirmDialog = document.getElementById("confirm");

  const MANIFEST_ACCEPT = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
  ].join(", ");
  const NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
  const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
  const DIGEST = /^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
  const CATALOG_PAGE = 50;
  const TAG_PAGE = 25;
  const CREDENTIALS_KEY = "berth-ui-credentials";

  let settings = { auth: "none", deleteEnabled: false, readOnly: false };
  /** Bearer tokens by the scope they were issued for. */
  const tokens = new Map();

  // --- building the page (text only)

  /** An element; `attrs` keys starting with "on" are listeners, others attributes. Strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      if (Array.isArray(child)) append(el, child);
      else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  /** Replaces an element's content; arrays among `children` are flattened (replaceChildren would stringify them). */
  function fill(el, ...children) {
    el.replaceChildren();
    append(el, children);
  }
  function show(...children) {
    fill(main, children);
  }
  function status(text) {
    return h("p", { class: "status", role: "status" }, text);
  }
  function errorBox(text) {
    return h("p", { class: "error", role: "alert" }, text);
  }
  function table(caption, headers, rows) {
    return h(
      "div",
      { class: "scroll" },
      h("table", {}, h("caption", { class: "note", style: undefined }, caption), h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: x.narrow ? "hide-narrow" : undefined }, x.label ?? x)))), h("tbody", {}, rows)),
    );
  }
  function facts(entries) {
    return h("dl", { class: "facts" }, entries.filter((e) => e[1] !== undefined && e[1] !== null && e[1] !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  // --- formatting

  function bytes(n) {
    if (typeof n !== "number" || !Number.isFinite(n)) return "—";
    if (n < 1024) return `${n} B`;
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }
  function when(iso) {
    if (typeof iso !== "string") return "—";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }
  function shortDigest(digest) {
    const colon = digest.indexOf(":");
    return colon < 0 ? digest : `${digest.slice(0, colon + 13)}…`;
  }
  function str(value) {
    return typeof value === "string" ? value : undefined;
  }
  function obj(value) {
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : undefined;
  }
  function arr(value) {
    return Array.isArray(value) ? value : [];
  }

  // --- addresses

  function repoHash(name, query) {
    return `#/r/${encodeURIComponent(name)}${query ? `?${query}` : ""}`;
  }
  function manifestHash(name, reference) {
    return `#/m/${encodeURIComponent(name)}/${encodeURIComponent(reference)}`;
  }
  function apiPath(name) {
    return name.split("/").map(encodeURIComponent).join("/");
  }
  const registryHost = location.host;

  // --- talking to the registry

  class RequestRefused extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }
  class LoginNeeded extends Error {}

  function storedCredentials() {
    try {
      return sessionStorage.getItem(CREDENTIALS_KEY) || undefined;
    } catch {
      return undefined;
    }
  }
  function userName() {
    const c = storedCredentials();
    if (!c) return undefined;
    try {
      const plain = atob(c);
      return plain.slice(0, plain.indexOf(":"));
    } catch {
      return undefined;
    }
  }

  /** `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` → {scheme, params}. */
  function parseChallenge(header) {
    const match = /^\s*(\w+)\s*(.*)$/.exec(header || "");
    if (!match) return undefined;
    const params = {};
    const re = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
    let m;
    while ((m = re.exec(match[2]))) params[m[1].toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3];
    return { scheme: match[1].toLowerCase(), params };
  }

  async function errorOf(response) {
    let code = "";
    let message = response.statusText || `HTTP ${response.status}`;
    try {
      const body = await response.json();
      const first = arr(obj(body)?.errors)[0];
      if (obj(first)) {
        code = str(first.code) ?? "";
        message = str(first.message) ?? message;
      }
    } catch {
      // not a registry error body
    }
    return new RequestRefused(response.status, code, message);
  }

  /** A token for `challenge` from the token service, as docker's client gets one. */
  async function fetchToken(challenge) {
    const realm = challenge.params.realm;
    if (!realm) throw new RequestRefused(401, "UNAUTHORIZED", "the registry asked for a token without naming a token service");
    const url = new URL(realm, location.href);
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    for (const scope of (challenge.params.scope || "").split(" ").filter(Boolean)) url.searchParams.append("scope", scope);
    const headers = {};
    const credentials = storedCredentials();
    if (credentials) headers.Authorization = `Basic ${credentials}`;
    let response;
    try {
      response = await fetch(url, { headers, credentials: "omit" });
    } catch (err) {
      throw new RequestRefused(0, "", `the token service at ${url.origin} could not be reached (${err.message}); it must allow requests from this page (CORS)`);
    }
    if (response.status === 401) throw new LoginNeeded(credentials ? "The token service refused that user name and password." : "");
    if (!response.ok) throw new RequestRefused(response.status, "", `the token service answered ${response.status}`);
    const body = obj(await response.json());
    const token = str(body?.token) ?? str(body?.access_token);
    if (!token) throw new RequestRefused(502, "", "the token service answered without a token");
    return token;
  }

  /**
   * A registry request with the session's credentials. On 401 it follows the challenge: Basic
   * needs the login form, Bearer a token for the challenge's scope (fetched once, then reused).
   * Resolves to the response when it is 2xx; rejects with RequestRefused or LoginNeeded.
   */
  async function call(path, init = {}) {
    const attempt = (authorization) => {
      const headers = new Headers(init.headers || {});
      if (authorization) headers.set("Authorization", authorization);
      // An open registry has no credentials to keep out, and "same-origin" is what the page's
      // preload of the first catalog page was fetched with (index.html): only then is it reused.
      return fetch(ROOT + path.slice(1), { ...init, headers, credentials: settings.auth === "none" ? "same-origin" : "omit", redirect: "follow" });
    };
    const credentials = storedCredentials();
    const basic = settings.auth === "htpasswd" || settings.auth === "silly";
    let response = await attempt(basic && credentials ? `Basic ${credentials}` : undefined);
    if (response.status === 401) {
      const challenge = parseChallenge(response.headers.get("WWW-Authenticate"));
      if (challenge?.scheme === "bearer") {
        const scope = challenge.params.scope || "";
        let token = tokens.get(scope);
        if (token) response = await attempt(`Bearer ${token}`);
        if (!token || response.status === 401) {
          token = await fetchToken(challenge);
          tokens.set(scope, token);
          response = await attempt(`Bearer ${token}`);
        }
        if (response.status === 401 && !credentials) throw new LoginNeeded("");
      } else if (challenge?.scheme === "basic") {
        throw new LoginNeeded(credentials ? "That user name and password were not accepted." : "");
      }
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async function callJSON(path, init) {
    return (await call(path, init)).json();
  }

  // --- session

  function renderSession() {
    sessionNav.replaceChildren();
    const user = userName();
    if (user !== undefined) {
      append(sessionNav, [
        h("span", { class: "note" }, "Signed in as ", h("strong", {}, user)),
        h("button", { type: "button", onclick: logout }, "Sign out"),
      ]);
    } else if (settings.auth !== "none") {
      append(sessionNav, [h("button", { type: "button", onclick: () => showLogin("") }, "Sign in")]);
    }
  }
  function logout() {
    try {
      sessionStorage.removeItem(CREDENTIALS_KEY);
    } catch {
      // storage unavailable: nothing was kept
    }
    tokens.clear();
    renderSession();
    route();
  }
  function showLogin(message) {
    const user = h("input", { type: "text", id: "login-user", name: "username", autocomplete: "username", required: true });
    const password = h("input", { type: "password", id: "login-password", name: "password", autocomplete: "current-password", required: true });
    const form = h(
      "form",
      {
        class: "login",
        "aria-labelledby": "login-title",
        onsubmit: (event) => {
          event.preventDefault();
          // UTF-8 user names and passwords survive btoa this way.
          const pair = new TextEncoder().encode(`${user.value}:${password.value}`);
          try {
            sessionStorage.setItem(CREDENTIALS_KEY, btoa(String.fromCharCode(...pair)));
          } catch {
            // without sessionStorage the login lasts until the page is reloaded
          }
          tokens.clear();
          renderSession();
          route();
        },
      },
      h("h1", { id: "login-title" }, "Sign in"),
      message ? errorBox(message) : null,
      h("p", { class: "note" }, settings.auth === "token" ? "Your credentials go to the registry's token service." : "Use your registry user name and password."),
      h("label", { for: "login-user" }, "User name", user),
      h("label", { for: "login-password" }, "Password", password),
      h("button", { type: "submit" }, "Sign in"),
    );
    show(form);
    user.focus();
  }

  /** Renders what a failed page load means for the user. */
  function showFailure(err, what) {
    if (err instanceof LoginNeeded) return showLogin(err.message);
    if (err instanceof RequestRefused) {
      if (err.status === 403 || err.status === 401) return show(errorBox(`You may not see ${what}: ${err.message}${err.code ? ` (${err.code})` : ""}.`));
      return show(errorBox(`Could not load ${what}: ${err.message}${err.code ? ` (${err.code})` : ""}.`));
    }
    show(errorBox(`Could not load ${what}: ${err && err.message ? err.message : String(err)}`));
  }

  // --- deleting

  /** Asks in a modal dialog; resolves true when the user confirmed. */
  function confirmDelete(text) {
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "delete"), { once: true });
      confirmDialog.returnValue = "";
      confirmDialog.showModal();
    });
  }

  /** The delete control: a button when deletes can work, otherwise the reason why not. */
  function deleteControl(label, describe, name, reference, after, message) {
    if (!settings.deleteEnabled || settings.readOnly) {
      return h("span", { class: "note" }, settings.readOnly ? "Read-only registry: nothing can be deleted." : "Deleting is turned off on this registry (storage.delete.enabled).");
    }
    return h(
      "button",
      {
        type: "button",
        class: "danger",
        "aria-label": `${label} ${describe}`,
        onclick: async () => {
          if (!(await confirmDelete(`${label} ${describe}? This cannot be undone.`))) return;
          message.textContent = "Deleting…";
          message.className = "status";
          try {
            await call(`/v2/${apiPath(name)}/manifests/${encodeURIComponent(reference)}`, { method: "DELETE" });
            after(`Deleted ${describe}.`);
          } catch (err) {
            message.className = "error";
            if (err instanceof LoginNeeded) message.textContent = "Sign in to delete.";
            else if (err instanceof RequestRefused && (err.status === 401 || err.status === 403)) message.textContent = `Refused: you may not delete in ${name} (${err.code || err.status}: ${err.message}).`;
            else if (err instanceof RequestRefused && err.status === 405) message.textContent = `Refused: the registry does not allow deletes (${err.message}).`;
            else message.textContent = `Could not delete ${describe}: ${err.message}`;
          }
        },
      },
      label,
    );
  }

  function pullCommand(text, label) {
    const input = h("input", { type: "text", readonly: true, value: text, "aria-label": label, onfocus: (e) => e.target.select() });
    return h(
      "div",
      { class: "pull" },
      input,
      h(
        "button",
        {
          type: "button",
          "aria-label": `Copy: ${label}`,
          onclick: async (event) => {
            const button = event.currentTarget;
            try {
              await navigator.clipboard.writeText(text);
            } catch {
              input.select();
              document.execCommand("copy");
            }
            button.textContent = "Copied";
            setTimeout(() => (button.textContent = "Copy"), 1500);
          },
        },
        "Copy",
      ),
    );
  }

  // --- pages

  async function catalogPage(query) {
    const q = query.get("q") || "";
    const last = query.get("last") || "";
    const search = h("input", { type: "search", id: "search", name: "q", value: q, placeholder: "e.g. team/app", autocomplete: "off" });
    const form = h(
      "form",
      {
        class: "inline",
        role: "search",
        onsubmit: (e) => {
          e.preventDefault();
          location.hash = `#/?${new URLSearchParams({ q: search.value.trim() })}`;
        },
      },
      h("label", { for: "search" }, "Search repositories by name", search),
      h("button", { type: "submit" }, "Search"),
    );
    const open = h("input", { type: "text", id: "open-name", name: "name", placeholder: "team/app", autocomplete: "off" });
    const openForm = h(
      "form",
      {
        class: "inline",
        onsubmit: (e) => {
          e.preventDefault();
          if (open.value.trim()) location.hash = repoHash(open.value.trim());
        },
      },
      h("label", { for: "open-name" }, "Open a repository by name", open),
      h("button", { type: "submit" }, "Open"),
    );
    show(h("h1", {}, q ? `Repositories matching “${q}”` : "Repositories"), form, status("Loading…"));
    let body;
    try {
      const params = new URLSearchParams({ n: String(CATALOG_PAGE) });
      if (q) params.set("q", q);
      if (last) params.set("last", last);
      body = await callJSON(`/ui/api/catalog?${params}`);
    } catch (err) {
      if (err instanceof RequestRefused && (err.status === 401 || err.status === 403)) {
        return show(h("h1", {}, "Repositories"), errorBox(`You may not list the repositories: ${err.message}.`), openForm);
      }
      return showFailure(err, "the repositories");
    }
    const names = arr(body.repositories).filter((n) => typeof n === "string");
    const list = names.length === 0 ? h("p", { class: "status", role: "status" }, q ? "No repository matches." : "No repositories yet.") : h("ul", { class: "list", id: "repositories" }, names.map((n) => h("li", {}, h("a", { href: repoHash(n) }, n))));
    const pager = h(
      "nav",
      { class: "pager", "aria-label": "Pages" },
      last ? h("a", { href: `#/?${new URLSearchParams(q ? { q } : {})}` }, "First page") : null,
      typeof body.next === "string" ? h("a", { href: `#/?${new URLSearchParams({ ...(q ? { q } : {}), last: body.next })}`, rel: "next" }, "Next page") : null,
    );
    show(h("h1", {}, q ? `Repositories matching “${q}”` : "Repositories"), form, list, pager, openForm);
  }

  async function repositoryPage(name, query, notice) {
    const order = query.get("order") === "newest" ? "newest" : "name";
    const offset = Math.max(0, Number(query.get("offset")) || 0);
    const crumbs = h("nav", { class: "crumbs", "aria-label": "Breadcrumbs" }, h("a", { href: "#/" }, "Repositories"), "/ ");
    if (!NAME.test(name)) return show(crumbs, h("h1", {}, "Not a repository name"), errorBox(`“${name}” is not a valid repository name.`));
    show(crumbs, h("h1", {}, name), status("Loading tags…"));
    let body;
    try {
      body = await callJSON(`/ui/api/repositories/${apiPath(name)}/tags?${new URLSearchParams({ n: String(TAG_PAGE), offset: String(offset), order })}`);
    } catch (err) {
      if (err instanceof RequestRefused && err.code === "NAME_UNKNOWN") return show(crumbs, h("h1", {}, name), errorBox("No such repository."));
      return showFailure(err, name);
    }
    const message = h("p", { role: "status", "aria-live": "polite", class: notice ? "done" : undefined }, notice);
    const reload = (text) => repositoryPage(name, query, text);
    const sort = h(
      "select",
      { id: "order", onchange: (e) => (location.hash = repoHash(name, new URLSearchParams({ order: e.target.value }))) },
      h("option", { value: "name", selected: order === "name" }, "Name"),
      h("option", { value: "newest", selected: order === "newest" }, "Newest first"),
    );
    const rows = arr(body.tags).map((t) =>
      h(
        "tr",
        {},
        h("th", { scope: "row" }, h("a", { href: manifestHash(name, t.tag) }, t.tag)),
        h("td", {}, h("a", { href: manifestHash(name, t.digest), class: "mono", title: t.digest }, shortDigest(t.digest))),
        h("td", { class: "hide-narrow" }, t.artifactType ? `${t.mediaType} (${t.artifactType})` : t.mediaType),
        h("td", {}, arr(t.platforms).length ? arr(t.platforms).join(", ") : "—"),
        h("td", { class: "num" }, bytes(t.size)),
        h("td", { class: "hide-narrow" }, when(t.pushed)),
        h("td", {}, pullCommand(`docker pull ${registryHost}/${name}:${t.tag}`, `pull ${name}:${t.tag}`), pullCommand(`docker pull ${registryHost}/${name}@${t.digest}`, `pull ${name} by digest`)),
        h("td", {}, deleteControl("Delete tag", `${name}:${t.tag}`, name, t.tag, reload, message)),
      ),
    );
    const total = typeof body.total === "number" ? body.total : rows.length;
    const pageQuery = (o) => new URLSearchParams({ order, offset: String(o) });
    show(
      crumbs,
      h("h1", {}, name),
      h("form", { class: "inline", onsubmit: (e) => e.preventDefault() }, h("label", { for: "order" }, "Order tags by", sort)),
      message,
      rows.length === 0
        ? status("No tags.")
        : table(`Tags ${offset + 1}–${offset + rows.length} of ${total}`, ["Tag", "Digest", { label: "Media type", narrow: true }, "Platforms", "Size", { label: "Pushed", narrow: true }, "Pull", "Delete"], rows),
      h(
        "nav",
        { class: "pager", "aria-label": "Pages" },
        offset > 0 ? h("a", { href: repoHash(name, pageQuery(Math.max(0, offset - TAG_PAGE))) }, "Previous page") : null,
        offset + TAG_PAGE < total ? h("a", { href: repoHash(name, pageQuery(offset + TAG_PAGE)), rel: "next" }, "Next page") : null,
      ),
    );
  }

  /** What a person calls an artifact type. */
  function referrerGroup(type) {
    const t = (type || "").toLowerCase();
    if (t === "application/vnd.dev.cosign.artifact.sig.v1+json" || t.includes("cosign") && t.includes("sig")) return "Cosign signatures";
    if (t.startsWith("application/vnd.cncf.notary.signature")) return "Notation signatures";
    if (t.includes("spdx") || t.includes("cyclonedx") || t.includes("syft") || t.includes("sbom")) return "SBOMs";
    if (t.includes("in-toto") || t.includes("dsse") || t.includes("sigstore.bundle") || t.includes("attestation") || t.includes("provenance")) return "Attestations";
    return type ? `Other: ${type}` : "Other (no artifact type)";
  }

  async function manifestPage(name, reference) {
    const crumbs = h("nav", { class: "crumbs", "aria-label": "Breadcrumbs" }, h("a", { href: "#/" }, "Repositories"), "/ ", NAME.test(name) ? h("a", { href: repoHash(name) }, name) : name);
    if (!NAME.test(name)) return show(crumbs, h("h1", {}, "Not a repository name"), errorBox(`“${name}” is not a valid repository name.`));
    if (!TAG.test(reference) && !DIGEST.test(reference)) return show(crumbs, h("h1", {}, "Not a reference"), errorBox(`“${reference}” is neither a tag nor a digest.`));
    show(crumbs, h("h1", {}, `${name}${reference.includes(":") ? "@" : ":"}${reference}`), status("Loading…"));
    let response;
    let raw;
    try {
      response = await call(`/v2/${apiPath(name)}/manifests/${encodeURIComponent(reference)}`, { headers: { Accept: MANIFEST_ACCEPT } });
      raw = await response.text();
    } catch (err) {
      if (err instanceof RequestRefused && (err.code === "MANIFEST_UNKNOWN" || err.code === "NAME_UNKNOWN")) return show(crumbs, errorBox(`No manifest ${reference} in ${name}.`));
      return showFailure(err, `${name} ${reference}`);
    }
    const digest = response.headers.get("Docker-Content-Digest") || reference;
    const mediaType = (response.headers.get("Content-Type") || "").split(";")[0];
    let manifest = {};
    try {
      manifest = obj(JSON.parse(raw)) || {};
    } catch {
      // shown raw below
    }
    const message = h("p", { role: "status", "aria-live": "polite" });
    const sections = [];
    const children = arr(manifest.manifests).map(obj).filter(Boolean);
    const isIndex = Array.isArray(manifest.manifests);
    const config = obj(manifest.config);
    const layers = arr(manifest.layers).map(obj).filter(Boolean);
    sections.push(
      facts([
        ["Digest", h("code", {}, digest)],
        ["Media type", mediaType || str(manifest.mediaType)],
        ["Artifact type", str(manifest.artifactType)],
        ["Compressed size", isIndex ? undefined : bytes([config, ...layers].reduce((s, d) => s + (d && typeof d.size === "number" ? d.size : 0), 0))],
        ["Refers to", obj(manifest.subject) && str(manifest.subject.digest) ? h("a", { href: manifestHash(name, manifest.subject.digest) }, manifest.subject.digest) : undefined],
      ]),
      h("div", {}, pullCommand(`docker pull ${registryHost}/${name}@${digest}`, `pull ${name} by digest`)),
    );
    if (isIndex) {
      sections.push(
        h("h2", {}, "Platforms"),
        table(
          `${children.length} manifests`,
          ["Platform", "Digest", { label: "Media type", narrow: true }, "Size"],
          children.map((c) => {
            const p = obj(c.platform);
            const platform = p ? [str(p.os), str(p.architecture), str(p.variant)].filter(Boolean).join("/") : "—";
            const attestation = str(obj(c.annotations)?.["vnd.docker.reference.type"]) === "attestation-manifest";
            return h(
              "tr",
              {},
              h("th", { scope: "row" }, attestation ? `attestation (${platform})` : platform),
              h("td", {}, str(c.digest) ? h("a", { href: manifestHash(name, c.digest), class: "mono", title: c.digest }, shortDigest(c.digest)) : "—"),
              h("td", { class: "hide-narrow" }, str(c.mediaType) ?? "—"),
              h("td", { class: "num" }, bytes(c.size)),
            );
          }),
        ),
      );
    }
    const configSection = h("section", { "aria-labelledby": "config-title" });
    if (config && str(config.digest)) sections.push(configSection);
    if (layers.length > 0) {
      sections.push(
        h("h2", {}, "Layers"),
        table(
          `${layers.length} layers, ${bytes(layers.reduce((s, l) => s + (typeof l.size === "number" ? l.size : 0), 0))} compressed`,
          ["#", "Digest", { label: "Media type", narrow: true }, "Size"],
          layers.map((l, i) => h("tr", {}, h("td", { class: "num" }, i + 1), h("td", { class: "mono", title: str(l.digest) }, shortDigest(str(l.digest) ?? "")), h("td", { class: "hide-narrow" }, str(l.mediaType) ?? "—"), h("td", { class: "num" }, bytes(l.size)))),
        ),
      );
    }
    const annotations = obj(manifest.annotations);
    if (annotations && Object.keys(annotations).length > 0) {
      sections.push(h("h2", {}, "Annotations"), facts(Object.entries(annotations).map(([k, v]) => [k, String(v)])));
    }
    const referrersSection = h("section", { "aria-labelledby": "referrers-title" }, h("h2", { id: "referrers-title" }, "Referrers"), status("Loading…"));
    sections.push(referrersSection);
    sections.push(h("h2", {}, "Raw manifest"), h("pre", { id: "raw", tabindex: "0", "aria-label": "Raw manifest JSON" }, prettyJSON(raw)));
    sections.push(h("h2", {}, "Delete"), message, deleteControl("Delete manifest", `${name}@${digest}`, name, digest, (text) => repositoryPage(name, new URLSearchParams(), text), message));
    show(crumbs, h("h1", {}, `${name}${reference.includes(":") ? "@" : ":"}${reference}`), sections);

    if (config && str(config.digest)) void loadConfig(name, config, configSection);
    void loadReferrers(name, digest, referrersSection);
  }

  function prettyJSON(raw) {
    try {
      return JSON.stringify(JSON.parse(raw), null, 2);
    } catch {
      return raw;
    }
  }

  async function loadConfig(name, descriptor, section) {
    const title = h("h2", { id: "config-title" }, "Image configuration");
    fill(section, title, status("Loading…"));
    let config;
    try {
      config = obj((await callJSON(`/ui/api/repositories/${apiPath(name)}/configs/${encodeURIComponent(descriptor.digest)}`)).config);
    } catch (err) {
      fill(section, title, errorBox(`Could not read the configuration: ${err.message}`));
      return;
    }
    if (!config) {
      fill(section, title, h("p", { class: "note" }, `The config blob (${str(descriptor.mediaType) ?? "unknown type"}) is not JSON.`));
      return;
    }
    const c = obj(config.config) || {};
    const list = (items) => (items.length ? h("ul", {}, items.map((x) => h("li", {}, h("code", {}, x)))) : undefined);
    const words = (v) => (Array.isArray(v) ? h("code", {}, JSON.stringify(v)) : undefined);
    const platform = [str(config.os), str(config.architecture), str(config.variant)].filter(Boolean).join("/");
    const labels = obj(c.Labels);
    const history = arr(config.history).map(obj).filter(Boolean);
    fill(section, 
      title,
      facts([
        ["Created", str(config.created) ? when(config.created) : undefined],
        ["Platform", platform || undefined],
        ["Entrypoint", words(c.Entrypoint)],
        ["Command", words(c.Cmd)],
        ["Working directory", str(c.WorkingDir)],
        ["User", str(c.User)],
        ["Exposed ports", obj(c.ExposedPorts) ? Object.keys(c.ExposedPorts).join(", ") : undefined],
        ["Environment", list(arr(c.Env).filter((x) => typeof x === "string"))],
        ["Labels", labels && Object.keys(labels).length ? facts(Object.entries(labels).map(([k, v]) => [k, String(v)])) : undefined],
      ]),
      history.length
        ? [
            h("h3", {}, "History"),
            table(
              `${history.length} steps`,
              ["Created", "Step", "Layer"],
              history.map((s) => h("tr", {}, h("td", {}, when(s.created)), h("td", {}, h("code", {}, str(s.created_by) ?? "")), h("td", {}, s.empty_layer ? "no" : "yes"))),
            ),
          ]
        : null,
    );
  }

  async function loadReferrers(name, digest, section) {
    const title = section.firstChild;
    let body;
    try {
      body = await callJSON(`/v2/${apiPath(name)}/referrers/${encodeURIComponent(digest)}`, { headers: { Accept: "application/vnd.oci.image.index.v1+json" } });
    } catch (err) {
      fill(section, title, errorBox(`Could not list the referrers: ${err.message}`));
      return;
    }
    const referrers = arr(obj(body)?.manifests).map(obj).filter(Boolean);
    if (referrers.length === 0) {
      fill(section, title, h("p", { class: "note" }, "No signatures, SBOMs or attestations refer to this manifest."));
      return;
    }
    const groups = new Map();
    for (const r of referrers) {
      const group = referrerGroup(str(r.artifactType));
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(r);
    }
    fill(section, 
      title,
      [...groups].map(([group, items]) => [
        h("h3", {}, `${group} (${items.length})`),
        h(
          "ul",
          { class: "list" },
          items.map((r) => {
            const created = str(obj(r.annotations)?.["org.opencontainers.image.created"]);
            return h("li", {}, h("a", { href: manifestHash(name, r.digest), class: "mono" }, str(r.digest) ?? "?"), " ", h("span", { class: "note" }, [str(r.artifactType), bytes(r.size), created ? when(created) : null].filter(Boolean).join(" · ")));
          }),
        ),
      ]),
    );
  }

  // --- routing: #/ (catalog), #/r/<name> (repository), #/m/<name>/<reference> (manifest)

  async function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    if (hash === "main") return;
    const q = hash.indexOf("?");
    const path = q < 0 ? hash : hash.slice(0, q);
    const query = new URLSearchParams(q < 0 ? "" : hash.slice(q + 1));
    const parts = path.split("/").slice(1);
    let decoded;
    try {
      decoded = parts.map(decodeURIComponent);
    } catch {
      return show(errorBox("That address is malformed."), h("a", { href: "#/" }, "Repositories"));
    }
    // htpasswd asks for a password on every request: sign in before asking anything.
    if (settings.auth !== "none" && settings.auth !== "token" && !storedCredentials()) showLogin("");
    else if (decoded[0] === "r" && decoded.length === 2) await repositoryPage(decoded[1], query);
    else if (decoded[0] === "m" && decoded.length === 3) await manifestPage(decoded[1], decoded[2]);
    else await catalogPage(query);
    const heading = main.querySelector("h1");
    document.title = heading ? `${heading.textContent} · berth` : "berth";
    // Keyboard and screen-reader users land on the new content, not on the link they followed.
    if (document.activeElement === document.body || document.activeElement === null) main.focus({ preventScroll: true });
    document.documentElement.dataset.ready = "true";
  }

  async function start() {
    // The page carries the settings (src/ui/static-assets.ts): no request stands between the
    // script and the first registry request. /ui/api/settings answers the same for other clients.
    try {
      settings = { ...settings, ...JSON.parse(document.documentElement.dataset.settings || "{}") };
    } catch {
      // a page without them: an open registry is assumed; requests will tell otherwise
    }
    renderSession();
    window.addEventListener("hashchange", () => {
      document.documentElement.dataset.ready = "false";
      void route();
    });
    await route();
  }

  void start();
})();
