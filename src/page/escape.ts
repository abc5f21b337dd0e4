/**
 * The page's two ways of carrying text from job files and replies, so that none of it is ever read as markup or
 * code: HTML text and attributes escaped, and data for the page's script as JSON that cannot close its element.
 */

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `text` as HTML text or a quoted attribute value. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character]!);

/**
 * `value` as JSON to place inside `<script type="application/json">`: `<`, `>` and `&` are written as `\u003c` and so
 * on, so that no `</script>` or `<!--` in a reply can end the element; U+2028 and U+2029 likewise, for old parsers.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
