// The little YAML the cloud-config renderers write, by hand: `yaml` is only a dev dependency, and
// the output should read like a file written by a person (block literals for file contents).

/**
 * A one-line scalar as a single-quoted YAML string (`'` doubled), as prettier writes it, so that
 * formatting the committed examples changes nothing.
 */
export function yamlString(s: string): string {
  if ([...s].some((c) => c < ' ' || c === '\x7f'))
    throw new Error('yamlString: control characters need a double-quoted string');
  return `'${s.replace(/'/g, "''")}'`;
}

/**
 * `text` as a block literal after `key:` at `indent` spaces: `|` keeps one final newline, `|-`
 * none. Lines are indented by two more spaces; an empty line stays empty.
 */
export function yamlBlock(text: string, indent: number): string {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  if (body.endsWith('\n') || /^\s/.test(body))
    throw new Error('yamlBlock: leading blanks and several final newlines need an indentation indicator');
  const pad = ' '.repeat(indent + 2);
  const lines = body.split('\n').map((l) => (l === '' ? '' : pad + l));
  return `${text.endsWith('\n') ? '|' : '|-'}\n${lines.join('\n')}`;
}
