import { setMaxListeners } from 'node:events';

/** Requests that share one signal, at most: each leaves a listener on it that the SDK never removes. */
const REQUESTS_PER_SIGNAL = 32;

/**
 * Signals for requests, aborted together when the run aborts. The SDK adds an abort listener to the signal of
 * every request and never removes it, so the run's own long-lived signal cannot be handed over (one closure per
 * request would stay for the whole run); one signal per request costs an AbortController each, which is not free
 * either. A signal serves {@link REQUESTS_PER_SIGNAL} requests, then a new one takes over and the old one is
 * dropped once its requests are done.
 */
export class RequestSignals {
  private current = RequestSignals.controller();
  private uses = 0;
  /** Signals with requests still in flight, and how many. */
  private readonly live = new Map<AbortController, number>();

  constructor(private readonly run: AbortSignal) {
    run.addEventListener('abort', () => {
      this.current.abort();
      for (const controller of this.live.keys()) controller.abort();
    }, { once: true });
    if (run.aborted) this.current.abort();
  }

  private static controller(): AbortController {
    const controller = new AbortController();
    // The SDK adds a listener per attempt (more with its own retries on): bounded by the requests a signal serves.
    setMaxListeners(0, controller.signal);
    return controller;
  }

  /** A signal for one request; `release` once the request is done. */
  take(): { signal: AbortSignal; release: () => void } {
    if (this.uses === REQUESTS_PER_SIGNAL) {
      this.current = RequestSignals.controller();
      if (this.run.aborted) this.current.abort();
      this.uses = 0;
    }
    this.uses++;
    const controller = this.current;
    this.live.set(controller, (this.live.get(controller) ?? 0) + 1);
    return {
      signal: controller.signal,
      release: () => {
        const left = this.live.get(controller)! - 1;
        if (left === 0) this.live.delete(controller);
        else this.live.set(controller, left);
      },
    };
  }
}
