import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { AzureDriver, type AzureDriverOptions, type AzureDriverTuning } from "../src/driver/azure/azure-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { runDriverSuite } from "./driver-suite.js";
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type Azurite } from "./support/azurite.js";

/**
 * The shared driver suite and azure-specific tests, against Azurite (a real Azure Blob Storage
 * emulator, started by this file on a free port and stopped by its PID). Each driver works in a
 * container of its own or under a root directory of its own.
 */

const MiB = 1024 * 1024;
const CONTAINER = "berth";

let azurite: Azurite | undefined;

function server(): Azurite {
  assert.ok(azurite, "azurite was not started");
  return azurite;
}

function driverOptions(overrides: Partial<AzureDriverOptions> = {}): AzureDriverOptions {
  return {
    accountname: AZURITE_ACCOUNT,
    container: CONTAINER,
    credentials: { type: "shared_key", accountKey: AZURITE_KEY },
    serviceurl: server().serviceUrl,
    ...overrides,
  };
}

before(async () => {
  azurite = await startAzurite();
  await azurite.createContainer(CONTAINER);
});

after(async () => {
  await azurite?.stop();
});

/** Tests of the shared suite this driver cannot pass, with the reason. None. */
const SUITE_SKIPS: Record<string, string> = {};

runDriverSuite("azure", async () => ({ driver: new AzureDriver(driverOptions()), cleanup: async () => undefined }), { skip: SUITE_SKIPS });

// Small blocks and pages, so that the suite's sizes cross block and page boundaries.
runDriverSuite(
  "azure (256 KiB blocks, 7-name pages, rootdirectory)",
  async () => ({ driver: new AzureDriver(driverOptions({ rootdirectory: "/small/" }), { blockSize: 256 * 1024, listPageSize: 7 }), cleanup: async () => undefined }),
  { skip: SUITE_SKIPS },
);
