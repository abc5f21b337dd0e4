import { baseModelName } from './tokens.js';

/**
 * Whether `model` spends hidden reasoning tokens, billed as output: the o-series (o1, o3, o4-mini, ...) and GPT-5,
 * but not GPT-5's chat variants (`gpt-5-chat-latest`), which answer without reasoning. A fine-tune reasons like the
 * model it was tuned from. A request can still turn reasoning off with `reasoning_effort: "none"` where the model
 * allows it; that is the caller's to check.
 */
export function isReasoningModel(model: string): boolean {
  const name = baseModelName(model);
  return /^(o1|o3|o4|gpt-5)/.test(name) && !/chat/.test(name);
}
