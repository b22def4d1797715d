// The one rule for the TCP API's bearer token, wherever it comes from (flag, environment, config
// file, token file) and again where the listener is built: an empty or short token is refused,
// never taken to mean "no authentication".
import { UsageError } from '../lib/errors.js';

export const API_TOKEN_MIN_LENGTH = 16;
const HINT = 'generate one with: openssl rand -hex 24';

/** Why `token` is not acceptable, or `undefined` when it is. */
export function apiTokenProblem(token: string): string | undefined {
  if (token.length < API_TOKEN_MIN_LENGTH)
    return `must be at least ${API_TOKEN_MIN_LENGTH} characters, got ${token.length} (${HINT})`;
  if (!/^[\x21-\x7e]+$/.test(token)) return `must be printable ASCII without spaces or line breaks (${HINT})`;
  return undefined;
}

/** Throws a usage error naming `source` when the token breaks the rule. */
export function checkApiToken(token: string, source: string): string {
  const problem = apiTokenProblem(token);
  if (problem !== undefined) throw new UsageError(`${source}: the API token ${problem}`);
  return token;
}
