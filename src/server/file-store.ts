/** Files kept; older URLs answer 404. */
const CAPACITY = 1000;

/**
 * Image files served back at `GET /files/<id>.png`, for `dall-e-*` answers that carry a `url`.
 * Only the newest ones are kept, so a long run does not grow memory; older URLs answer 404, much like
 * expired URLs of the real API.
 */
export class FileStore {
  readonly #files = new Map<string, Buffer>();
  #created = 0;

  /** Stores the bytes and returns their id. */
  add(bytes: Buffer): string {
    this.#created += 1;
    const id = `img_${this.#created.toString(16).padStart(8, '0')}`;
    this.#files.set(id, bytes);
    if (this.#files.size > CAPACITY) {
      const oldest = this.#files.keys().next().value;
      if (oldest !== undefined) this.#files.delete(oldest);
    }
    return id;
  }

  get(id: string): Buffer | undefined {
    return this.#files.get(id);
  }
}
