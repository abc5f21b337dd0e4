/**
 * An error answer in OpenAI's shape. Request validation throws it; the HTTP shell turns it into
 * `{"error": {"message", "type", "param", "code"}}` with `status` and any extra `headers`.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: number,
    message: string,
    details: { type?: string; param?: string | null; code?: string | null; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.type = details.type ?? defaultErrorType(status);
    this.param = details.param ?? null;
    this.code = details.code === undefined ? defaultErrorCode(status) : details.code;
    this.headers = details.headers ?? {};
  }

  /** The response body. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A 400 about one request field, worded like the real API's. */
export const invalidRequest = (message: string, param: string | null, code: string | null = null): ApiError =>
  new ApiError(400, message, { param, code });

/** The real API's answer for a model that does not exist, or that the key cannot use. */
export const modelNotFound = (model: string): ApiError =>
  new ApiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, { code: 'model_not_found' });

/** The real API's answer for a path it does not serve. */
export const notFound = (method: string | undefined, path: string): ApiError =>
  new ApiError(404, `Invalid URL (${method ?? 'GET'} ${path})`);

/** The 429 of an account out of credit: unlike a rate limit, waiting does not help. */
export const insufficientQuota = (): ApiError =>
  new ApiError(
    429,
    'You exceeded your current quota, please check your plan and billing details. ' +
      '(Offline server: the `quota` option is used up.)',
    { type: 'insufficient_quota', code: 'insufficient_quota' },
  );

/** The `error.type` OpenAI uses for a status: `requests` is what real rate-limit answers carry. */
function defaultErrorType(status: number): string {
  if (status === 429) return 'requests';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The `error.code` OpenAI uses for a status when nothing more specific applies. */
function defaultErrorCode(status: number): string | null {
  if (status === 429) return 'rate_limit_exceeded';
  if (status === 401) return 'invalid_api_key';
  return null;
}
