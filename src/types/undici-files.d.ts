// The undici files the transport imports instead of undici's index (src/cli/transport.ts), typed as the index types them.
declare module 'undici/lib/dispatcher/dispatcher.js' {
  import { Dispatcher } from 'undici';
  export default Dispatcher;
}

declare module 'undici/lib/api/index.js' {
  /** The request methods undici's index installs on `Dispatcher.prototype`. */
  const api: Record<'request' | 'stream' | 'pipeline' | 'upgrade' | 'connect', (...args: unknown[]) => unknown>;
  export default api;
}

declare module 'undici/lib/dispatcher/agent.js' {
  import { Agent } from 'undici';
  export default Agent;
}

declare module 'undici/lib/dispatcher/env-http-proxy-agent.js' {
  import { EnvHttpProxyAgent } from 'undici';
  export default EnvHttpProxyAgent;
}
