import { IMAGE_FAMILIES, imageFamilyOf, imageParamProblems } from '../common/image-params.js';
import type { ProblemDetail } from './problems.js';

/**
 * The problems with an image request's fields for its model's family (`src/common/image-params.ts`): a size, quality,
 * count or field the family does not take. None for a model of a family nightshift does not know. `prefix` is
 * prepended to field paths (`body.size`).
 */
export function checkImageParams(model: string, fields: Readonly<Record<string, unknown>>, prefix = ''): ProblemDetail[] {
  const family = imageFamilyOf(model);
  if (family === undefined) return [];
  return imageParamProblems(IMAGE_FAMILIES[family], fields, model).map(({ field, message }) => ({ field: `${prefix}${field}`, message }));
}
