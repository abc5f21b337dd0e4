import { ApiError, modelNotFound } from './api-error.js';
import type { LineHandler } from './batches.js';
import { buildChatCompletion, chatArrivalEstimate, chatTokenEstimate, describeChat, parseChatRequest } from './chat.js';
import type { FileStore } from './file-store.js';
import { buildImagesResponse, describeImages, imageTokenEstimate, parseImageRequest } from './images.js';
import { listModels } from './models.js';
import type { ResolvedOptions } from './options.js';
import type { PromptCache } from './prompt-cache.js';

/** How one endpoint reads and answers a request. */
export interface Route {
  /** Model and key for fault matching and the log; lenient, never throws. */
  describe(body: unknown): { model?: string; key: string; serviceTier?: string };
  /**
   * Validates (throwing {@link ApiError}) and says what the request costs against a tokens-per-minute limit
   * (`tokens`: its prompt and output bound; `estimate`: OpenAI's estimate on arrival, see `RateLimits.charge`);
   * `respond` builds the answer once the request is let through.
   */
  prepare(body: unknown): { tokens: number; estimate?: number; respond(context: AnswerContext): unknown };
}

/** What an answer may need to know about the request it answers. */
export interface AnswerContext {
  requestId: string;
  /** `http://host:port` as the client addressed the server, for URLs it must be able to follow. */
  origin: string;
}

/**
 * The endpoints the server answers itself, by `METHOD /path`: chat, images (their PNGs published to `images`,
 * served under `/files/`) and the model list.
 */
export function endpointRoutes(options: ResolvedOptions, promptCache: PromptCache, images: FileStore): Record<string, Route> {
  return {
    'POST /v1/chat/completions': {
      describe: describeChat,
      prepare: (body) => {
        const request = parseChatRequest(body);
        return {
          tokens: chatTokenEstimate(request),
          estimate: chatArrivalEstimate(request),
          respond: ({ requestId }) => {
            const completion = buildChatCompletion(request, {
              id: `chatcmpl-${requestId.slice('req_'.length)}`,
              created: unixSeconds(),
              cachedTokens: promptCache.use(request.promptText, request.promptTokens),
            });
            if (options.omitUsage) delete completion.usage;
            return completion;
          },
        };
      },
    },
    'POST /v1/images/generations': {
      describe: describeImages,
      prepare: (body) => {
        const request = parseImageRequest(body);
        return {
          tokens: imageTokenEstimate(request),
          respond: ({ origin }) =>
            buildImagesResponse(request, {
              created: unixSeconds(),
              publish: (png) => `${origin}/files/${images.add(png)}.png`,
            }),
        };
      },
    },
    'GET /v1/models': {
      describe: () => ({ key: '' }),
      prepare: () => ({ tokens: 0, respond: () => listModels(unixSeconds(), options.models) }),
    },
  };
}

/**
 * Batch lines are answered by the live endpoints' own logic; rate limits, quota and fault rules are not theirs.
 * `origin` is the server's `http://host:port`, read when a line is answered.
 */
export function batchLineHandler(routes: Record<string, Route>, options: ResolvedOptions, origin: () => string): LineHandler {
  const route = (url: string): Route => {
    const found = routes[`POST ${url}`];
    if (found === undefined) throw new Error(`no route for batch endpoint ${url}`);
    return found;
  };
  return {
    describe: (url, body) => route(url).describe(body),
    tokens: (url, body) => {
      try {
        return route(url).prepare(body).tokens;
      } catch (error) {
        // A line the endpoint refuses is answered with its 400 and takes no tokens.
        if (error instanceof ApiError) return 0;
        throw error;
      }
    },
    answer: (url, body, requestId) => {
      try {
        const { model } = route(url).describe(body);
        const { models } = options;
        if (models !== undefined && model !== undefined && !models.has(model)) throw modelNotFound(model);
        return { status: 200, body: route(url).prepare(body).respond({ requestId, origin: origin() }) };
      } catch (error) {
        if (error instanceof ApiError) return { status: error.status, body: error.body() };
        throw error;
      }
    },
  };
}

const unixSeconds = (): number => Math.floor(Date.now() / 1000);
