// log and the deprecated top-level loglevel.
import type { Config } from "./config.js";
import { child, readBool, readEnum, readSection, readString } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

export function buildLog(root: RawMap, warnings: string[]): Config["log"] {
  const LEVELS = ["error", "warn", "warning", "info", "debug"] as const;
  const log = readSection(child(root, "log"), "log");
  let level = readEnum(child(log, "level"), "log.level", LEVELS);
  // distribution still honours the deprecated top-level key when log.level is absent.
  const legacy = readEnum(child(root, "loglevel"), "loglevel", LEVELS);
  if (legacy !== undefined) {
    warnings.push(level === undefined ? "loglevel is deprecated; use log.level" : "loglevel is deprecated and overridden by log.level");
    level ??= legacy;
  }

  const fieldsNode = child(log, "fields");
  const fields: Record<string, string> = {};
  for (const [name, value] of readSection(fieldsNode, "log.fields")?.entries ?? []) {
    fields[name] = readString(value, `log.fields.${name}`) ?? "";
  }

  return {
    level: level === undefined ? "info" : level === "warning" ? "warn" : level,
    formatter: readEnum(child(log, "formatter"), "log.formatter", ["text", "json", "logstash"] as const) ?? "text",
    accessLogDisabled: readBool(child(readSection(child(log, "accesslog"), "log.accesslog"), "disabled"), "log.accesslog.disabled") ?? false,
    fields,
    reportCaller: readBool(child(log, "reportcaller"), "log.reportcaller") ?? false,
  };
}
