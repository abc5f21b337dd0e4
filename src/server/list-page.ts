import { invalidRequest } from './api-error.js';

/** A page of a list endpoint, as the API answers it (the SDK's `CursorPage` reads `data` and `has_more`). */
export interface ListPage<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

/**
 * The page of `items` (already in listing order) that starts after the item `after` names and holds at most
 * `limit` (by default `limits.default`, at most `limits.max`), as the API's cursor pagination does.
 */
export function listPage<T extends { id: string }>(
  items: readonly T[],
  query: URLSearchParams,
  limits: { default: number; max: number },
): ListPage<T> {
  const limitText = query.get('limit');
  const maxLimit = limits.max;
  const limit = limitText === null ? limits.default : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit) {
    throw invalidRequest(`Invalid 'limit': expected an integer from 1 to ${maxLimit}, got '${limitText}'.`, 'limit', 'invalid_value');
  }
  const after = query.get('after');
  const start = after === null ? 0 : items.findIndex((item) => item.id === after) + 1;
  // An `after` that names nothing known gives an empty page, as a cursor past the end does.
  const data = after !== null && start === 0 ? [] : items.slice(start, start + limit);
  return {
    object: 'list',
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: start + data.length < items.length && data.length > 0,
  };
}
