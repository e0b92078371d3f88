/**
 * Notifications survive `kill -9`: the crash campaign of tools/notifications-crash.ts in its quick
 * form. Each round runs berth as a real process with one webhook endpoint, a few clients pushing,
 * pulling, mounting and deleting, kills berth with SIGKILL at a random moment (every other round
 * with the receiver down), restarts it on the same storage root and waits until its outboxes are
 * empty. Every event of an acknowledged request must have arrived, nothing no request asked for,
 * and every event that was in an outbox at the kill. Duplicates are allowed (at least once).
 *
 * The full campaign (200 rounds) is `npm run crash:notifications`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { failed, formatSummary, runCampaign, type CampaignOptions } from "../tools/notifications-crash.js";

async function campaign(options: Partial<CampaignOptions> & Pick<CampaignOptions, "rounds" | "workers">): Promise<void> {
  const seed = Math.floor(Math.random() * 2 ** 32);
  const settings = { clients: 3, opsPerClient: 25, seed, ...options };
  const summary = await runCampaign({ ...settings, log: (line) => process.stderr.write(`# ${line}\n`) });
  const report = formatSummary(summary, settings);
  process.stderr.write(`${report.replace(/^/gm, "# ")}\n`);
  assert.equal(summary.rounds, options.rounds);
  assert.ok(summary.acknowledged > 0, `the workload was acknowledged at all:\n${report}`);
  assert.equal(summary.missing, 0, `events of acknowledged requests missing:\n${report}`);
  assert.equal(summary.invented, 0, `events no request asked for:\n${report}`);
  assert.equal(summary.lostFromOutbox, 0, `events stored in an outbox at the kill never delivered:\n${report}`);
  assert.equal(summary.unreadableAtKill, 0, `outbox batches that did not parse after the kill:\n${report}`);
  assert.equal(summary.stuckRounds, 0, `outboxes never drained:\n${report}`);
  assert.equal(failed(summary), false, report);
}

// A liveness guard, not a figure: once in ~240 campaign rounds a round hung after its kill (no
// berth process left, the round never finished); a hang must fail here, not stall the whole run.
const HANG_GUARD = { timeout: 300_000 };

describe("notifications: kill -9 at a random moment, then a restart", () => {
  it("delivers every event of every acknowledged push, pull, mount and delete, and none that no request asked for", HANG_GUARD, async () => {
    await campaign({ rounds: 6, workers: 1 });
  });

  it("with serve --workers 2, every worker and the primary killed: a restart delivers what each worker's outbox held", HANG_GUARD, async () => {
    await campaign({ rounds: 2, workers: 2 });
  });
});
