import { invalidRequest } from './api-error.js';

/** What a `multipart/form-data` body held: its text fields, and its one file part once written out. */
export interface MultipartForm {
  fields: Map<string, string>;
  /** The file part, if there was one: its form field name, file name and size; its bytes went to the sink. */
  file?: { field: string; filename: string; bytes: number };
}

/** Where the bytes of the file part go, a chunk at a time (awaited, so a slow disk slows the upload). */
export interface FileSink {
  write(chunk: Buffer): Promise<void>;
}

/** Text fields are small (`purpose`); a larger one is a mistake, not something to hold in memory. */
const MAX_FIELD_BYTES = 64 * 1024;

/** The boundary of a `multipart/form-data` content type, or undefined for any other content type. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !/^multipart\/form-data\s*;/i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

/**
 * Reads a `multipart/form-data` body as it arrives: text fields are kept, the file part is streamed to `sink`
 * (so a 200 MB upload never sits in memory), at most `maxFileBytes` of it. A malformed body, a second file part, or
 * a file over the limit is a 400, as the API answers.
 */
export async function readMultipart(
  body: AsyncIterable<Buffer> | Iterable<Buffer>,
  boundary: string,
  sink: FileSink,
  maxFileBytes: number,
): Promise<MultipartForm> {
  // The body starts with `--boundary`; seen as `\r\n--boundary` every delimiter looks the same.
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const form: MultipartForm = { fields: new Map() };
  type State = 'preamble' | 'after-delimiter' | 'headers' | 'body' | 'done';
  let state = 'preamble' as State;
  let pending: Buffer = Buffer.from('\r\n');
  let part: { name: string; filename: string | undefined; chunks: Buffer[]; bytes: number } | undefined;

  const emit = async (chunk: Buffer): Promise<void> => {
    if (part === undefined || chunk.length === 0) return;
    part.bytes += chunk.length;
    if (part.filename === undefined) {
      if (part.bytes > MAX_FIELD_BYTES) throw invalidRequest(`The form field '${part.name}' is too long.`, part.name);
      part.chunks.push(chunk);
    } else {
      if (part.bytes > maxFileBytes) throw invalidRequest(`The file is larger than the ${maxFileBytes} bytes allowed.`, 'file', 'file_too_large');
      await sink.write(chunk);
    }
  };
  const endPart = (): void => {
    if (part === undefined) return;
    if (part.filename === undefined) form.fields.set(part.name, Buffer.concat(part.chunks).toString('utf8'));
    else form.file = { field: part.name, filename: part.filename, bytes: part.bytes };
    part = undefined;
  };

  const step = async (): Promise<boolean> => {
    switch (state) {
      case 'preamble':
      case 'body': {
        const at = pending.indexOf(delimiter);
        if (at < 0) {
          // Keep a tail that could be the start of the delimiter; the rest is part data (or preamble).
          const keep = Math.min(pending.length, delimiter.length - 1);
          if (state === 'body') await emit(pending.subarray(0, pending.length - keep));
          pending = pending.subarray(pending.length - keep);
          return false;
        }
        if (state === 'body') await emit(pending.subarray(0, at));
        endPart();
        pending = pending.subarray(at + delimiter.length);
        state = 'after-delimiter';
        return true;
      }
      case 'after-delimiter': {
        if (pending.length < 2) return false;
        const mark = pending.toString('latin1', 0, 2);
        if (mark === '--') state = 'done';
        else if (mark === '\r\n') state = 'headers';
        else throw malformed();
        pending = pending.subarray(2);
        return state !== 'done';
      }
      case 'headers': {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) {
          if (pending.length > MAX_FIELD_BYTES) throw malformed();
          return false;
        }
        part = partOf(pending.toString('utf8', 0, end));
        if (part.filename !== undefined && form.file !== undefined) throw invalidRequest('Only one file can be uploaded at a time.', part.name);
        pending = pending.subarray(end + 4);
        state = 'body';
        return true;
      }
      case 'done':
        return false;
    }
  };

  for await (const chunk of body) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (await step());
  }
  if (state !== 'done') throw malformed();
  return form;
}

const malformed = () => invalidRequest('The request body is not valid multipart/form-data.', null);

function partOf(headers: string): { name: string; filename: string | undefined; chunks: Buffer[]; bytes: number } {
  const disposition = headers.split('\r\n').find((line) => /^content-disposition\s*:/i.test(line));
  const name = disposition === undefined ? undefined : /;\s*name="([^"]*)"/i.exec(disposition)?.[1];
  if (disposition === undefined || name === undefined) throw malformed();
  const filename = /;\s*filename="([^"]*)"/i.exec(disposition)?.[1];
  return { name, filename, chunks: [], bytes: 0 };
}
