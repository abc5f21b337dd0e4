/**
 * Removes secrets from text that may reach a log, a CSV or the terminal. Servers and proxies sometimes echo
 * request headers in error bodies, headers or even replies, so every string from the server (error messages,
 * request ids, reply text) passes through here before it is stored or printed, and before it is cut short: a
 * secret cut in half no longer matches.
 */
export function createRedactor(secrets: readonly (string | undefined)[]): (text: string) => string {
  // A key with spaces around it (`OPENAI_API_KEY="sk-... "` in a .env file) goes out trimmed: that is what comes back.
  const literal = secrets.map((secret) => secret?.trim()).filter((secret): secret is string => typeof secret === 'string' && secret.length >= 8);
  return (text) => {
    let out = text;
    for (const secret of literal) out = out.split(secret).join('[redacted]');
    return out
      .replace(/\bsk-[A-Za-z0-9_-]{8,}/g, 'sk-[redacted]')
      .replace(/(\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, '$1[redacted]');
  };
}
