/**
 * What app and stream names may look like. Names reach logs, metrics labels, Redis keys, NATS payloads and URLs, so
 * they are held to a length and a character set before anything else looks at them.
 */

/** Longest app name (`live`, `live/sub`): the app is a routing word, not a place for payloads. */
export const MAX_APP_LENGTH = 128;
/** Longest stream name (without its query): room for long random keys. */
export const MAX_STREAM_NAME_LENGTH = 256;

/** Path segments of letters, digits and `._~-` separated by single slashes; no `.`/`..` segments. */
const APP_RE = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;
/** No control characters, no backslash (path confusion), no `?`/`#` (the query was split off before). */
const NAME_FORBIDDEN_RE = /[\u0000-\u001f\u007f\\?#]/;

export type NameProblem = 'app_too_long' | 'bad_app' | 'name_too_long' | 'bad_name';

function hasDotSegment(path: string): boolean {
  return path.split('/').some((s) => s === '.' || s === '..' || s === '');
}

/** Undefined when both are acceptable, else what is wrong (a stable reason for logs and metrics). */
export function nameProblem(app: string, name: string): NameProblem | undefined {
  if (app.length > MAX_APP_LENGTH) return 'app_too_long';
  if (!APP_RE.test(app) || hasDotSegment(app)) return 'bad_app';
  if (name.length > MAX_STREAM_NAME_LENGTH) return 'name_too_long';
  if (name.length === 0 || NAME_FORBIDDEN_RE.test(name) || hasDotSegment(name)) return 'bad_name';
  return undefined;
}

export const NAME_PROBLEM_TEXT: Record<NameProblem, string> = {
  app_too_long: `Invalid app name: longer than ${MAX_APP_LENGTH} characters.`,
  bad_app: 'Invalid app name: use letters, digits, ".", "_", "~", "-" and "/".',
  name_too_long: `Invalid stream name: longer than ${MAX_STREAM_NAME_LENGTH} characters.`,
  bad_name: 'Invalid stream name.',
};
