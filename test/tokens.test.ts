import { countTokens as o200kTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { countChatCompletionTokens } from 'gpt-tokenizer/model/gpt-4o';
import { describe, expect, it } from 'vitest';
import { countChatTokens, countDefinitionTokens, countTextTokens, encodingFor } from '../src/cost/tokens.js';
import { imageInputTokens, imageSizeFromUrl, imageTokens, visionRuleFor } from '../src/cost/vision-tokens.js';

/** A data URL holding just a PNG header (signature and IHDR) for an image of the given size: all the estimate reads. */
function pngUrl(width: number, height: number): string {
  const header = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(header, 0);
  header.writeUInt32BE(13, 8);
  header.write('IHDR', 12, 'latin1');
  header.writeUInt32BE(width, 16);
  header.writeUInt32BE(height, 20);
  return `data:image/png;base64,${header.toString('base64')}`;
}

describe('chat input tokens', () => {
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Write a haiku about servers humming at night.' },
  ];

  it("counts each message's text in o200k_base plus 3 per message and 3 to prime the reply", () => {
    // o200k: "system" 1 + "You are terse." 4, "user" 1 + the prompt 10; 3 + (3 + 1 + 4) + (3 + 1 + 10) = 25.
    expect(o200kTokens('You are terse.')).toBe(4);
    expect(o200kTokens('Write a haiku about servers humming at night.')).toBe(10);
    expect(countChatTokens(messages, 'o200k_base')).toBe(25);
    // gpt-tokenizer's own chat counter applies OpenAI's overheads the same way.
    expect(countChatCompletionTokens?.({ messages })).toBe(countChatTokens(messages, 'o200k_base'));
  });

  it('adds one token for a message name on top of the name itself', () => {
    const named = [{ role: 'user', name: 'dana', content: 'Hello world' }];
    // 3 + (3 + "user" 1 + "dana" 2 + 1 + "Hello world" 2) = 12.
    expect(countChatTokens(named, 'o200k_base')).toBe(12);
  });

  it('counts the text parts of multi-part content and leaves images to the vision rules', () => {
    const parts = [{ role: 'user', content: [{ type: 'text', text: 'Hello world' }, { type: 'image_url', image_url: { url: pngUrl(64, 64) } }] }];
    // 3 + (3 + "user" 1 + "Hello world" 2) = 9.
    expect(countChatTokens(parts, 'o200k_base')).toBe(9);
  });

  it("counts an earlier assistant turn's refusal part as text", () => {
    const refused = [{ role: 'assistant', content: [{ type: 'refusal', refusal: 'Hello world' }] }];
    // 3 + (3 + "assistant" 1 + "Hello world" 2) = 9.
    expect(countChatTokens(refused, 'o200k_base')).toBe(9);
  });

  it('counts tool definitions and a JSON schema response format as their JSON text', () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
    const schema = { name: 'contact', schema: { type: 'object' } };
    const body = { tools, response_format: { type: 'json_schema', json_schema: schema }, temperature: 0 };
    expect(countDefinitionTokens(body, 'o200k_base')).toBe(o200kTokens(JSON.stringify(tools)) + o200kTokens(JSON.stringify(schema)));
    expect(countDefinitionTokens({ response_format: { type: 'json_object' } }, 'o200k_base')).toBe(0);
  });

  it('counts special-token strings in user text as ordinary text', () => {
    expect(countTextTokens('before <|endoftext|> after', 'o200k_base')).toBeGreaterThan(3);
  });

  it('picks o200k_base for GPT-4o and later, cl100k_base for GPT-4 and GPT-3.5, and assumes o200k_base for unknown models', () => {
    expect(encodingFor('gpt-4o-mini')).toEqual({ name: 'o200k_base', assumed: false });
    expect(encodingFor('gpt-5.2')).toEqual({ name: 'o200k_base', assumed: false });
    expect(encodingFor('o3-mini')).toEqual({ name: 'o200k_base', assumed: false });
    expect(encodingFor('gpt-image-1.5')).toEqual({ name: 'o200k_base', assumed: false });
    expect(encodingFor('ft:gpt-4.1-mini-2025-04-14:acme::abc123')).toEqual({ name: 'o200k_base', assumed: false });
    expect(encodingFor('gpt-4-turbo')).toEqual({ name: 'cl100k_base', assumed: false });
    expect(encodingFor('gpt-3.5-turbo')).toEqual({ name: 'cl100k_base', assumed: false });
    expect(encodingFor('local-llama')).toEqual({ name: 'o200k_base', assumed: true });
  });

  it('counts differently in cl100k_base where the encodings differ', () => {
    // "A watercolor lighthouse at dusk": 5 tokens in o200k_base, 7 in cl100k_base.
    expect(countTextTokens('A watercolor lighthouse at dusk', 'o200k_base')).toBe(5);
    expect(countTextTokens('A watercolor lighthouse at dusk', 'cl100k_base')).toBe(7);
  });
});

describe('image input tokens', () => {
  const gpt4o = visionRuleFor('gpt-4o').rule;

  it("costs GPT-4o's examples from OpenAI's vision guide", () => {
    // 1024x1024 high: short side to 768 → 768x768 → 2x2 tiles → 85 + 4·170 = 765.
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', gpt4o)).toBe(765);
    // Any size at low detail: the base 85.
    expect(imageTokens({ width: 4096, height: 8192 }, 'low', gpt4o)).toBe(85);
    // 2048x4096 high: fits 2048x2048 as 1024x2048, short side to 768 → 768x1536 → 2x3 tiles → 85 + 6·170 = 1105.
    expect(imageTokens({ width: 2048, height: 4096 }, 'high', gpt4o)).toBe(1105);
  });

  it('counts auto detail (and no detail) as high, the dearer choice', () => {
    expect(imageTokens({ width: 1024, height: 1024 }, 'auto', gpt4o)).toBe(765);
    expect(imageTokens({ width: 1024, height: 1024 }, undefined, gpt4o)).toBe(765);
  });

  it("costs patch models by 32px patches capped at 1536, times the model's multiplier", () => {
    const mini = visionRuleFor('gpt-4.1-mini').rule;
    expect(mini).toEqual({ kind: 'patches', multiplier: 1.62 });
    // The guide's examples: 1024x1024 → 32·32 = 1024 patches; 1800x2400 → 4275 raw patches, scaled to 33x44 = 1452.
    // gpt-4.1-mini: 1024 · 1.62 = 1658.88 → 1659; 1452 · 1.62 = 2352.24 → 2352. Detail does not apply.
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', mini)).toBe(1659);
    expect(imageTokens({ width: 1024, height: 1024 }, 'low', mini)).toBe(1659);
    expect(imageTokens({ width: 1800, height: 2400 }, 'high', mini)).toBe(2352);
    // o4-mini: 1024 · 1.72 = 1761.28 → 1761; gpt-5-nano: 1024 · 2.46 = 2519.04 → 2519.
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', visionRuleFor('o4-mini').rule)).toBe(1761);
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', visionRuleFor('gpt-5-nano').rule)).toBe(2519);
  });

  it('uses each tile family its own base and tile tokens', () => {
    // 1024x1024 high is 4 tiles everywhere: GPT-5 70 + 4·140 = 630; o1/o3 75 + 4·150 = 675; GPT-4o mini 2833 + 4·5667 = 25501.
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', visionRuleFor('gpt-5.2').rule)).toBe(630);
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', visionRuleFor('o3').rule)).toBe(675);
    expect(imageTokens({ width: 1024, height: 1024 }, 'high', visionRuleFor('gpt-4o-mini').rule)).toBe(25_501);
    expect(visionRuleFor('my-vision-model')).toEqual({ rule: gpt4o, assumed: true });
  });

  it('reads the real size of a data: URL image from its header', () => {
    expect(imageSizeFromUrl(pngUrl(2048, 4096))).toEqual({ width: 2048, height: 4096 });
    expect(imageInputTokens(pngUrl(2048, 4096), 'high', 'gpt-4o')).toEqual({ tokens: 1105, worstTokens: 1105, sizeAssumed: false, ruleAssumed: false });
  });

  it('assumes 1024x1024 for an http(s) image and takes the most the rule allows as its worst case', () => {
    // Worst case for tiles: at most 2x4 tiles after resizing → 85 + 8·170 = 1445; for patches: 1536 · 1.62 = 2488.32 → 2488.
    expect(imageInputTokens('https://example.com/a.jpg', 'high', 'gpt-4o')).toEqual({ tokens: 765, worstTokens: 1445, sizeAssumed: true, ruleAssumed: false });
    expect(imageInputTokens('https://example.com/a.jpg', 'low', 'gpt-4o')).toMatchObject({ tokens: 85, worstTokens: 85 });
    expect(imageInputTokens('https://example.com/a.jpg', undefined, 'gpt-4.1-mini')).toMatchObject({ tokens: 1659, worstTokens: 2488 });
  });
});
