/**
 * Attribute names berth adds beside the OpenTelemetry semantic conventions. Storage attributes are
 * distribution 3's (registry/storage/driver/base), prefix included, so queries and dashboards made
 * for its traces find berth's storage spans too; attributes distribution has no equivalent of are
 * berth's own.
 */
export const DISTRIBUTION_PREFIX = "io.cncf.distribution.";

export const ATTR_STORAGE_DRIVER_NAME = `${DISTRIBUTION_PREFIX}storage.driver.name`;
export const ATTR_STORAGE_PATH = `${DISTRIBUTION_PREFIX}storage.path`;
export const ATTR_STORAGE_OFFSET = `${DISTRIBUTION_PREFIX}storage.offset`;
export const ATTR_STORAGE_APPEND = `${DISTRIBUTION_PREFIX}storage.append`;
export const ATTR_STORAGE_CONTENT_LENGTH = `${DISTRIBUTION_PREFIX}storage.content.length`;
export const ATTR_STORAGE_SOURCE_PATH = `${DISTRIBUTION_PREFIX}storage.source.path`;
export const ATTR_STORAGE_DEST_PATH = `${DISTRIBUTION_PREFIX}storage.dest.path`;

/** The repository a request or cache entry concerns, as the client named it. */
export const ATTR_REPOSITORY_NAME = "berth.repository.name";
/** How a writer ended: commit, cancel or close (resumable later). */
export const ATTR_STORAGE_WRITER_OUTCOME = "berth.storage.writer.outcome";
/** Bytes in the object when the writer ended. */
export const ATTR_STORAGE_SIZE = "berth.storage.size";
/** The path was not there: an answer, not a failure, so the span's status stays unset. */
export const ATTR_STORAGE_NOT_FOUND = "berth.storage.not_found";
