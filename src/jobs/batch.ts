import type { Job, JobKind, SourceLocation } from '../common/types.js';
import { checkImageParams } from './image-params.js';
import { hasImagePart } from './kind.js';
import { checkOutput, defaultOutputPattern } from './output-path.js';
import { parseFields } from './parse-fields.js';
import type { ProblemDetail } from './problems.js';
import { isJsonObject } from './records.js';
import { batchBodyFields, batchRequestFields } from './schema.js';

/** True when a record is written in the OpenAI Batch API input format rather than as a nightshift job. */
export const isBatchRequest = (record: Readonly<Record<string, unknown>>): boolean =>
  Object.hasOwn(record, 'custom_id') || (Object.hasOwn(record, 'url') && Object.hasOwn(record, 'body'));

/**
 * A job from a Batch API input line, `{"custom_id", "method": "POST", "url", "body"}`, taken as it
 * stands: the body is sent unchanged, so no defaults apply. The kind follows from the url, and for chat
 * from whether a message has an `image_url` part.
 */
export function batchRequestToJob(record: Readonly<Record<string, unknown>>, source: SourceLocation): { job: Job } | { problems: ProblemDetail[] } {
  const { values, problems, unknown } = parseFields(record, batchRequestFields);
  for (const key of unknown) problems.push({ field: key, message: 'unknown field: a Batch API line has custom_id, method, url and body' });
  for (const key of Object.keys(batchRequestFields)) {
    if (!Object.hasOwn(record, key)) problems.push({ field: key, message: 'required' });
  }
  const { custom_id: id, url: endpoint, body } = values;
  if (problems.length > 0 || id === undefined || endpoint === undefined || body === undefined) return { problems };

  // The body goes out unchanged, so what nightshift reads of it is held to the rules of its own jobs.
  problems.push(...parseFields(body, batchBodyFields[endpoint], { prefix: 'body.' }).problems);
  let kind: JobKind;
  if (endpoint === '/v1/images/generations') {
    kind = 'image';
    if (body['prompt'] === undefined) problems.push({ field: 'body.prompt', message: 'required: the text of the image to generate' });
    problems.push(...checkImageParams(body.model, body, 'body.'));
  } else {
    kind = hasImagePart(body['messages']) ? 'vision' : 'chat';
    if (body['messages'] === undefined) problems.push({ field: 'body.messages', message: 'required: an array of messages' });
    problems.push(...localImageParts(body['messages']));
  }
  const job: Job = { id, kind, model: body.model, tags: [], source, endpoint, body };
  if (kind === 'image') {
    const n = body['n'] ?? 1;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 10) {
      return { problems: [...problems, { field: 'body.n', message: 'expected an integer from 1 to 10' }] };
    }
    const format = typeof body['output_format'] === 'string' ? body['output_format'] : undefined;
    job.output = defaultOutputPattern(n, format);
    const reason = checkOutput(job.output, id, n);
    if (reason !== undefined) problems.push({ field: 'custom_id', message: `makes an unusable image file name: ${reason}` });
  }
  return problems.length > 0 ? { problems } : { job };
}

/** A Batch body is sent unchanged, so an `image_url` part naming a local file (which a nightshift job would inline) is refused. */
function localImageParts(messages: unknown): ProblemDetail[] {
  if (!Array.isArray(messages)) return [];
  return messages.flatMap((message: unknown, i) => {
    const content = isJsonObject(message) ? message['content'] : undefined;
    if (!Array.isArray(content)) return [];
    return content.flatMap((part: unknown, j) => {
      const image = isJsonObject(part) && part['type'] === 'image_url' ? part['image_url'] : undefined;
      const url = isJsonObject(image) ? image['url'] : undefined;
      if (typeof url !== 'string' || /^(https?|data):/i.test(url)) return [];
      const message = 'a Batch API body is sent unchanged: use an http(s) or data: URL, or write the job as a nightshift job to inline a local file';
      return [{ field: `body.messages.${i}.content.${j}.image_url.url`, message }];
    });
  });
}
