import type { FileWriter } from './files.js';

/** Lines of an output or error file: written through a buffer, or held and shuffled when the file is finished. */
export class LineSink {
  readonly #file: FileWriter;
  readonly #random: (() => number) | undefined;
  #buffer: string[] = [];
  #buffered = 0;

  constructor(file: FileWriter, random: (() => number) | undefined) {
    this.#file = file;
    this.#random = random;
  }

  async write(entry: unknown): Promise<void> {
    const text = `${JSON.stringify(entry)}\n`;
    this.#buffer.push(text);
    this.#buffered += text.length;
    if (this.#random === undefined && this.#buffered > 1 << 20) await this.#flush();
  }

  async finish(details: Parameters<FileWriter['finish']>[0]) {
    const random = this.#random;
    if (random !== undefined) {
      for (let i = this.#buffer.length - 1; i > 0; i--) {
        const j = random() % (i + 1);
        [this.#buffer[i], this.#buffer[j]] = [this.#buffer[j] as string, this.#buffer[i] as string];
      }
    }
    await this.#flush();
    return this.#file.finish(details);
  }

  async #flush(): Promise<void> {
    if (this.#buffer.length === 0) return;
    const text = this.#buffer.join('');
    this.#buffer = [];
    this.#buffered = 0;
    await this.#file.write(text);
  }
}
