/**
 * An HLS request's query: the LL-HLS control parameters (`_HLS_msn`, `_HLS_part`, `_HLS_skip`, and `session`, an id
 * the player picks, for the viewer estimate), and everything else as the auth query: what admission sees and what
 * every URI of the playlist carries, serialized as URLSearchParams does.
 *
 * Every request of every viewer is parsed, so the common shape (plain `name=value` pairs of unreserved characters,
 * whose form-urlencoded serialization is themselves) is read without URLSearchParams; anything else (escapes, `+`,
 * `=` or other characters in a value, a pair without `=`) takes URLSearchParams, so both give the same result.
 */

export interface HlsQuery {
  /** `_HLS_msn`: undefined if absent, NaN if malformed. */
  msn: number | undefined;
  /** `_HLS_part`: undefined if absent, NaN if malformed. */
  part: number | undefined;
  /** `_HLS_skip=YES|v2`: a delta playlist. */
  skip: boolean;
  session: string | undefined;
  /** The query minus the control parameters, URLSearchParams-serialized ('' when none). */
  authQuery: string;
}

const CONTROL_PARAMS = new Set(['_HLS_msn', '_HLS_part', '_HLS_skip', 'session']);
/** A pair URLSearchParams would serialize unchanged: unreserved name, `=`, unreserved value. */
const PLAIN_PAIR = /^[\w*.-]+=[\w*.-]*$/;
const INT_PARAM = /^\d{1,12}$/;

/** Parses a non-negative decimal integer parameter; undefined if absent, NaN if malformed. */
function intParam(v: string | null | undefined): number | undefined {
  if (v === null || v === undefined) return undefined;
  return INT_PARAM.test(v) ? Number(v) : Number.NaN;
}

const isSkip = (v: string | null | undefined): boolean => v === 'YES' || v === 'v2';

/** Through URLSearchParams: the reference, for any query. */
export function parseHlsQuerySlow(raw: string): HlsQuery {
  const query = new URLSearchParams(raw);
  const carried = new URLSearchParams();
  for (const [k, v] of query) if (!CONTROL_PARAMS.has(k)) carried.append(k, v);
  return {
    msn: intParam(query.get('_HLS_msn')),
    part: intParam(query.get('_HLS_part')),
    skip: isSkip(query.get('_HLS_skip')),
    session: query.get('session') ?? undefined,
    authQuery: carried.toString(),
  };
}

/** `raw` is what follows `?` in the request target (without it), '' for none. */
export function parseHlsQuery(raw: string): HlsQuery {
  if (raw === '') return { msn: undefined, part: undefined, skip: false, session: undefined, authQuery: '' };
  let msn: string | undefined;
  let part: string | undefined;
  let skip: string | undefined;
  let session: string | undefined;
  let authQuery = '';
  for (const pair of raw.split('&')) {
    if (pair === '') continue; // URLSearchParams skips empty pairs too
    if (!PLAIN_PAIR.test(pair)) return parseHlsQuerySlow(raw);
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    // The first occurrence counts, like URLSearchParams.get.
    if (name === '_HLS_msn') msn ??= value;
    else if (name === '_HLS_part') part ??= value;
    else if (name === '_HLS_skip') skip ??= value;
    else if (name === 'session') session ??= value;
    else authQuery = authQuery === '' ? pair : `${authQuery}&${pair}`;
  }
  return { msn: intParam(msn), part: intParam(part), skip: isSkip(skip), session, authQuery };
}
